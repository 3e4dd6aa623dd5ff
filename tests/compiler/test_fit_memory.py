"""fit_memory: weights + KV cache + activations per device, the largest n_ctx, and a clear refusal."""

import pytest
from llmc.compiler.devices import list_profiles
from llmc.compiler.driver import pipeline, run_pipeline
from llmc.compiler.elaborate import load_arch
from llmc.compiler.fit_memory import facts_from_gguf, facts_from_types, fit_memory
from llmc.compiler.passes.partition_graph import PartitionContext
from llmc.ir.errors import LlmcError
from llmc.runtime.gguf_file import GGUFFile

from tests.compiler.test_driver import ARCHS

# Qwen2.5-0.5B-Instruct as the seed user ran it: Q4_0 layers, Q8_0 token_embd tied as the lm head.
QWEN25_05B = {
    "n_embd": 896,
    "n_layer": 24,
    "n_ff": 4864,
    "n_head": 14,
    "n_head_kv": 2,
    "eps": 1e-6,
    "rope_base": 1e6,
    "n_vocab": 151936,
}
LAYER = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")
TYPES = {**{name: "Q4_0" for name in LAYER}, "token_embd": "Q8_0", "bq": "F32", "bk": "F32", "bv": "F32"}


def _partitioned(arch, target, facts):
    profiles = list_profiles()
    ctx = PartitionContext(facts.weight_types, facts.params, True)
    return run_pipeline(
        load_arch(f"{ARCHS}/{arch}.llmc"), None, pipeline(profiles[target], profiles, ctx)
    ), profiles


def test_qwen25_05b_on_an_8gb_310b4():
    facts = facts_from_types(load_arch(f"{ARCHS}/qwen2.llmc"), QWEN25_05B, TYPES, n_ctx_train=32768)
    per_layer = 896 * (896 * 2 + 128 * 2 + 4864 * 3) // 32 * 18 + 2 * 4 * 896 + 4 * (896 + 128 * 2)
    embd = 151936 * 896 // 32 * 34
    assert sum(facts.weight_bytes.values()) == 24 * per_layer + embd + 4 * 896
    graph, profiles = _partitioned("qwen2", "ascend310b", facts)
    fit = fit_memory(graph, profiles, facts)
    kv = 24 * 2 * 2 * (2 * 64)  # layers x (K, V) x f16 x (n_head_kv x head_dim)
    assert sum(u.kv_per_token for u in fit.uses.values()) == kv
    assert fit.max_n_ctx == 32768 and "trained context" in fit.limit
    assert fit.pools[0][1] == ["ascend310b", "cpu"]  # one board: NPU and CPU share 8 GiB

    small = fit_memory(graph, profiles, facts, {"ascend310b": 1 << 30})
    fixed = sum(u.weights + u.activations for u in small.uses.values())
    assert small.max_n_ctx == ((1 << 30) - fixed) // kv < 32768
    with pytest.raises(
        LlmcError,
        match=r"does not fit ascend310b \(shared with cpu\) \(512.0 MiB\): weights "
        r"and activations alone take",
    ):
        fit_memory(graph, profiles, facts, {"ascend310b": 512 << 20})


def test_real_fixture_counts_every_tensor(qwen2_q8_path):
    facts = facts_from_gguf(load_arch(f"{ARCHS}/qwen2.llmc"), qwen2_q8_path)
    assert sum(facts.weight_bytes.values()) == sum(t.nbytes for t in GGUFFile(qwen2_q8_path).tensors.values())
    graph, profiles = _partitioned("qwen2", "ascend910b", facts)
    fit = fit_memory(graph, profiles, facts)
    assert fit.max_n_ctx == 4096  # the fixture's context_length
    # every tensor of this Q8_0 file runs on the 910B (the embedding too, with its Q8_0 kernel)
    assert fit.uses["ascend910b"].weights == sum(facts.weight_bytes.values()) and fit.uses["cpu"].weights == 0
