"""Whole models on Ascend profiles: the NPU partition runs as AscendC kernels through the emulator, the
rest as C, and the logits agree with llama.cpp (top-1 >= 0.90 for random-weight quantized files,
median max |Δlogit| <= 0.15 x std)."""
import os

import pytest

import llmc
from llmc.agreement import assert_agrees, compare_logits
from llmc.compiler.driver import compile_model
from tests.fixtures.models import fixture_tokens, write_qwen2

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")


def _run(arch, target, gguf, out_dir, oracle, n=20):
    result = compile_model(os.path.join(ARCHS, f"{arch}.llmc"), target, str(out_dir), gguf=gguf)
    assert result.manifest["codegen"]["stand_in"] is None
    kernels = result.manifest["accelerators"][target]["kernels"]
    source = (out_dir / "src" / "model.c").read_text()
    model = llmc.load(str(out_dir), gguf, n_ctx=64, n_batch=16)      # 20 tokens: T = 16, then T = 4
    ids = fixture_tokens(model.n_vocab, n, seed=4)
    ours, theirs = model.logits(ids), oracle.llama_logits(gguf, ids)
    print(arch, target, compare_logits(ours, theirs))
    assert_agrees(ours, theirs, top1_min=0.90, ratio_max=0.15)
    return kernels, source


@pytest.mark.parametrize("weight_type", ["Q8_0", "Q4_0"])
def test_qwen2_on_310b(weight_type, tmp_path, oracle):
    path = str(tmp_path / "q.gguf")
    write_qwen2(path, weight_type=weight_type)
    kernels, source = _run("qwen2", "ascend310b", path, tmp_path / "art", oracle)
    ops = {k["op"] for k in kernels.values()}
    # the matmuls ran as AscendC kernels, and each decomposed rms_norm (310B has no RmsNorm) came back
    # as one generated kernel: sqr, mean, scale, rsqrt, mul fused (the residual add joins the second)
    assert {"matmul", "rope", "pw_swiglu_ee"} <= ops, ops
    norms = [op for op in ops if op.startswith("pw_") and "sqr_mean_scale_rsqrt_mul" in op]
    assert len(norms) >= 2 and not ops & {"sqr", "mean", "rsqrt", "mul_rows"}, ops
    assert "llmc_ascend_" in source


def test_gpt_oss_on_910b(gpt_oss_path, tmp_path, oracle):
    kernels, _ = _run("gpt_oss", "ascend910b", gpt_oss_path, tmp_path / "art", oracle)
    ops = {k["op"] for k in kernels.values()}
    # softmax (the router) and the gate run as kernels generated from their definitions
    assert "rope" in ops and any(op.startswith("pw_") and "softmax" in op for op in ops), ops
    assert any("swiglu_oai" in op for op in ops), ops


@pytest.mark.parametrize("arch", ["qwen2", "gpt_oss"])
def test_310p_runs_ascendc(arch, qwen2_q8_path, gpt_oss_path, tmp_path, oracle):
    """310P has no DataCopyPad: its partition is still AscendC (not generated C). qwen2's rows are whole
    32-byte blocks; gpt-oss's 4-expert router softmax is not, and takes the staged one-core path."""
    gguf = qwen2_q8_path if arch == "qwen2" else gpt_oss_path
    kernels, source = _run(arch, "ascend310p", gguf, tmp_path / "art", oracle)
    ops = {k["op"] for k in kernels.values()}
    assert {"matmul", "rope"} <= ops and any(op.startswith("pw_") for op in ops), ops
    assert "llmc_ascend_" in source


def test_310b_batches_sequences(qwen2_q8_path, tmp_path):
    """The AscendC attention reads each token's (sequence, position) and keeps one KV cache per sequence,
    so the artifact takes a batch of several sequences (llmc serve -np N): each gets the logits it gets
    alone."""
    import numpy as np
    from llmc.runtime.artifact import CEngine
    from llmc.runtime.gguf_file import GGUFFile
    compile_model(os.path.join(ARCHS, "qwen2.llmc"), "ascend310b", str(tmp_path), gguf=qwen2_q8_path)
    gguf = GGUFFile(qwen2_q8_path)
    prompts = [fixture_tokens(400, 6, seed=1), fixture_tokens(400, 4, seed=2)]
    alone = CEngine(str(tmp_path), gguf, n_ctx=32, n_threads=2)
    want = []
    for p in prompts:
        alone.reset()
        want.append(alone.forward(np.array(p), True))
    rows = [(s, i) for i in range(6) for s in (0, 1) if i < len(prompts[s])]      # interleaved
    got = CEngine(str(tmp_path), gguf, n_ctx=32, n_threads=2, n_seq=2).forward_batch(
        np.array([prompts[s][i] for s, i in rows]), np.array([s for s, _ in rows]),
        np.array([i for _, i in rows]), np.arange(len(rows)))
    for s in (0, 1):
        mine = np.stack([row for row, (seq, _) in zip(got, rows) if seq == s])
        np.testing.assert_allclose(mine, want[s], rtol=0, atol=1e-4)


def test_launches_do_not_grow_with_tokens_and_tilings_upload_once(qwen2_q8_path, tmp_path):
    """A step is a fixed set of launches whatever its T (a matmul is one launch for all tokens, bias
    included); a tiling is uploaded the first time its dims occur, after which a step blocks the host only
    at its copies to and from the host (docs/ascendc.md §12). Counted by the host library's counters."""
    import ctypes

    import numpy as np
    result = compile_model(os.path.join(ARCHS, "qwen2.llmc"), "ascend310b", str(tmp_path), gguf=qwen2_q8_path)
    source = (tmp_path / "src" / "model.c").read_text()
    assert "llmc_ascend_begin_step(m->asc);" in source
    assert "LLMC_ASCEND_ON_DEVICE" in source            # the layer carry is copied on the device
    lib = ctypes.CDLL(str(tmp_path / result.manifest["library"]))
    lib.llmc_ascend_launches.restype = lib.llmc_ascend_blocking_calls.restype = ctypes.c_long
    engine = llmc.load(str(tmp_path), qwen2_q8_path, n_ctx=64, n_batch=16).engine
    ids = np.array(fixture_tokens(engine.n_vocab, 50, seed=2))

    def step(tokens):
        launches, blocking = lib.llmc_ascend_launches(None), lib.llmc_ascend_blocking_calls()
        engine.forward(tokens, False)
        return lib.llmc_ascend_launches(None) - launches, lib.llmc_ascend_blocking_calls() - blocking

    first16, first1 = step(ids[:16]), step(ids[16:17])
    again16, again1, other8 = step(ids[17:33]), step(ids[33:34]), step(ids[34:42])
    assert first16[0] == first1[0] == again16[0] == again1[0] == other8[0]     # launches: same for T = 16, 1, 8
    assert again16[1] == again1[1] < first16[1]         # no tiling uploads once each shape has run
    assert other8[1] > again1[1]                        # T = 8 is new: its tilings upload, once
    # what still blocks: one wait per copy to or from the host, 3 per step whatever the layers: each token's
    # (sequence, position, id) in, the rope tables in, the logits out
    assert again1[1] == 3, again1


def test_an_n_ctx_attention_cannot_tile_is_refused_at_load(qwen2_q8_path, tmp_path):
    """A row's attention scores stay in UB (docs/ascendc.md §14): an n_ctx beyond that is a load error
    naming the limit, not a failure at the first long step."""
    compile_model(os.path.join(ARCHS, "qwen2.llmc"), "ascend910b", str(tmp_path), gguf=qwen2_q8_path)
    llmc.load(str(tmp_path), qwen2_q8_path, n_ctx=4096)
    with pytest.raises(llmc.LlmcError, match="scores over n_ctx keys do not fit in UB"):
        llmc.load(str(tmp_path), qwen2_q8_path, n_ctx=40000)


def test_rope_freqs_keep_rope_on_the_cpu(tmp_path, oracle):
    """The AscendC rope does not apply freq_factors: a Llama 3.x file (rope_freqs.weight) keeps its ropes on
    the CPU with the reason and still agrees; a file without the tensor puts them on the NPU, and that
    artifact refuses a file that has it instead of ignoring the factors."""
    from tests.fixtures.models import write_llama
    with_ff = write_llama(tmp_path / "ff.gguf", weight_type="Q8_0", rope_freqs=True)
    plain = write_llama(tmp_path / "plain.gguf", weight_type="Q8_0")
    result = compile_model(os.path.join(ARCHS, "llama.llmc"), "ascend910b", str(tmp_path / "ff"), gguf=with_ff)
    ropes = [n for n in result.graph.nodes() if n.op.value == "rope"]
    assert ropes and all(n.device == "cpu" and "freq_factors" in n.placement for n in ropes)
    _run("llama", "ascend910b", with_ff, tmp_path / "ff", oracle)
    kernels, _ = _run("llama", "ascend910b", plain, tmp_path / "plain", oracle)
    assert "rope" in {k["op"] for k in kernels.values()}
    model = llmc.load(str(tmp_path / "plain"), with_ff, n_ctx=64, n_batch=16)
    with pytest.raises(llmc.LlmcError, match="rope_freqs.weight is in this file"):
        model.logits(fixture_tokens(model.n_vocab, 4, seed=4))
