"""The batched multi-sequence forward: tokens of several sequences in one call give the logits each
sequence gets alone, and a sequence's cached KV is reused by a later batch."""
import os

import numpy as np
import pytest

from llmc.compiler.driver import compile_model
from llmc.ir.errors import LlmcError
from llmc.runtime.artifact import CEngine
from llmc.runtime.gguf_file import GGUFFile
from tests.fixtures.models import fixture_tokens

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")


@pytest.fixture(scope="module")
def qwen2_artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("qwen2-batch")
    compile_model(os.path.join(ARCHS, "qwen2.llmc"), "c", str(out))
    return str(out)


def test_batch_of_three_sequences_equals_each_alone(qwen2_artifact, qwen2_f32_path):
    gguf = GGUFFile(qwen2_f32_path)
    prompts = [fixture_tokens(400, n, seed=s) for s, n in ((1, 9), (2, 4), (3, 6))]
    alone = CEngine(qwen2_artifact, gguf, n_ctx=32, n_threads=2)
    expected = []
    for p in prompts:
        alone.reset()
        expected.append(alone.forward(np.array(p), True))

    batched = CEngine(qwen2_artifact, gguf, n_ctx=32, n_threads=2, n_seq=3)
    # step 1: the first 3 tokens of every sequence, interleaved; step 2: the rest, sequence 1 first
    got = [[], [], []]
    for lo, hi, order in ((0, 3, (0, 1, 2)), (3, 9, (1, 2, 0))):
        rows = [(s, i) for i in range(lo, hi) for s in order if i < len(prompts[s])]
        tokens = [prompts[s][i] for s, i in rows]
        logits = batched.forward_batch(np.array(tokens), np.array([s for s, _ in rows]),
                                       np.array([i for _, i in rows]), np.arange(len(rows)))
        for (s, _), row in zip(rows, logits):
            got[s].append(row)
    for s in range(3):
        np.testing.assert_allclose(np.stack(got[s]), expected[s], rtol=0, atol=2e-4)

    # only some rows' logits: the last token of sequences 0 and 2 (the row-wise tail runs on those rows)
    more = [fixture_tokens(400, 2, seed=9), fixture_tokens(400, 1, seed=10)]
    logits = batched.forward_batch(np.array(more[0] + more[1]), np.array([0, 0, 2]),
                                   np.array([9, 10, 6]), np.array([1, 2]))
    alone.reset()
    want0 = alone.forward(np.array(prompts[0] + more[0]), False)
    alone.reset()
    want2 = alone.forward(np.array(prompts[2] + more[1]), False)
    np.testing.assert_allclose(logits, np.stack([want0[0], want2[0]]), rtol=0, atol=2e-4)


def test_batch_refuses_bad_sequence_position_and_rows(qwen2_artifact, qwen2_f32_path):
    engine = CEngine(qwen2_artifact, GGUFFile(qwen2_f32_path), n_ctx=16, n_threads=1, n_seq=2)
    one = np.array([1])
    with pytest.raises(LlmcError, match="sequence 2 of token 0 is outside 0..1"):
        engine.forward_batch(one, np.array([2]), np.array([0]), np.array([0]))
    with pytest.raises(LlmcError, match="position 16 of token 0 does not fit n_ctx 16"):
        engine.forward_batch(one, np.array([0]), np.array([16]), np.array([0]))
    with pytest.raises(LlmcError, match="out_rows must ascend"):
        engine.forward_batch(np.array([1, 2]), np.array([0, 1]), np.array([0, 0]), np.array([1, 0]))
