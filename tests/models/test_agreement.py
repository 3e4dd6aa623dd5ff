"""Whole models against llama.cpp (the oracle) on the same GGUF file, reference and C targets.

Tolerances (from the foundation issue): top-1 agreement >= 0.95 and median per-position max |Δlogit|
<= 0.15 x the std of llama.cpp's logits. F32-weight files have no activation quantization in llama.cpp,
so they are held to 0.01 x std: above that is a bug in the math, not rounding. Random-weight quantized
fixtures have many near-ties (top-2 margins below 0.05 x std, under the activation-quantization noise),
so their top-1 bound is 0.90; the max |Δlogit| bound is the same 0.15.
"""
import os

import numpy as np
import pytest

import llmc
from llmc.agreement import assert_agrees, assert_same_greedy, compare_logits
from llmc.compiler.driver import compile_model
from tests.fixtures.models import fixture_tokens

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")
TEXT = ("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg developed "
        "a system of movable metal type in the German city of Mainz. Before his invention, books were copied "
        "by hand, which made them rare and expensive. The new machines spread quickly across Europe, and within "
        "fifty years millions of books had been printed. This change helped scholars share ideas.")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """One generic C artifact per architecture, compiled once (the build cache makes repeats cheap)."""
    out = {}
    for arch in ("llama", "qwen2", "gpt_oss", "qwen3", "gemma3", "gemma2", "phi3"):
        d = tmp_path_factory.mktemp(f"{arch}-c")
        compile_model(os.path.join(ARCHS, f"{arch}.llmc"), "c", str(d))
        out[arch] = str(d)
    return out


def _load(arch, path, target, artifacts, n_ctx=128):
    return llmc.load(artifacts[arch] if target == "c" else os.path.join(ARCHS, f"{arch}.llmc"), path,
                     n_ctx=n_ctx, **({"n_batch": 32} if target == "c" else {}))


@pytest.mark.parametrize("target", ["reference", "c"])
def test_smollm2_agrees_with_llama_cpp(target, smollm2_path, oracle, artifacts):
    model = _load("llama", smollm2_path, target, artifacts)
    ids = model.tokenize(TEXT)
    assert len(ids) >= 64
    ours = model.logits(ids)
    theirs = oracle.llama_logits(smollm2_path, ids)
    print(target, compare_logits(ours, theirs))
    assert_agrees(ours, theirs, top1_min=0.95, ratio_max=0.15)


CASES = [
    ("qwen2", "qwen2_f32_path", 1.0, 0.01),
    ("qwen2", "qwen2_q8_path", 0.90, 0.15),
    ("qwen2", "qwen2_q4_0_tied_path", 0.90, 0.15),
    ("gpt_oss", "gpt_oss_f32_path", 1.0, 0.01),
    ("gpt_oss", "gpt_oss_path", 0.90, 0.15),
    ("llama", "llama_f32_path", 1.0, 0.01),
    ("llama", "llama_rope_freqs_f32_path", 1.0, 0.01),
    ("qwen3", "qwen3_f32_path", 1.0, 0.01),
    ("qwen3", "qwen3_q8_path", 0.90, 0.15),
    ("qwen3", "qwen3_q4_0_tied_path", 0.90, 0.15),
    ("gemma3", "gemma3_f32_path", 1.0, 0.01),
    ("gemma3", "gemma3_q8_path", 0.90, 0.15),
    ("gemma3", "gemma3_softcap_f32_path", 1.0, 0.01),
    ("gemma2", "gemma2_f32_path", 1.0, 0.01),
    ("gemma2", "gemma2_q8_path", 0.90, 0.15),
    ("phi3", "phi3_f32_path", 1.0, 0.01),
    ("phi3", "phi3_q8_path", 0.90, 0.15),
    ("phi3", "phi3_long_rope_f32_path", 1.0, 0.01),
]


@pytest.mark.parametrize("target", ["reference", "c"])
@pytest.mark.parametrize("arch,fixture,top1,ratio", CASES, ids=[c[1] for c in CASES])
def test_fixture_agrees_with_llama_cpp(arch, fixture, top1, ratio, target, request, oracle, artifacts):
    path = request.getfixturevalue(fixture)
    model = _load(arch, path, target, artifacts)
    ids = fixture_tokens(model.n_vocab, 48, seed=3)       # 48 > the gpt-oss window of 8
    ours = model.logits(ids)
    theirs = oracle.llama_logits(path, ids)
    print(arch, fixture, target, compare_logits(ours, theirs))
    assert_agrees(ours, theirs, top1_min=top1, ratio_max=ratio)


def test_c_greedy_equals_reference_on_smollm2(smollm2_path, artifacts):
    """32 greedy tokens equal the reference's; a difference is accepted only at a near-tie of the
    reference (top-2 logits < 0.1 apart), where f32 summation order decides."""
    ref = _load("llama", smollm2_path, "reference", artifacts)
    c = _load("llama", smollm2_path, "c", artifacts)
    for text in ("The capital of France is", "The three primary colours are"):
        assert_same_greedy(ref, c, ref.tokenize(text), 32)
    # The text itself makes sense (C's greedy tokens, equal to the reference's as just checked: cheaper).
    a = c.generate_ids(c.tokenize("The three primary colours are"), 32, stop_at_eos=False)
    assert "red" in c.detokenize(a).lower() or "blue" in c.detokenize(a).lower()


def test_decode_continues_prefill(qwen2_q8_path, artifacts):
    """Prefill then one-token steps give the same logits as one teacher-forced pass (the KV cache works)."""
    c = _load("qwen2", qwen2_q8_path, "c", artifacts)
    ids = np.array(fixture_tokens(c.n_vocab, 12, seed=5), np.int32)
    full = c.logits(ids)
    c.engine.reset()
    steps = [c.engine.forward(ids[:5], True)] + [c.engine.forward(ids[k:k + 1], True) for k in range(5, 12)]
    np.testing.assert_allclose(np.concatenate(steps), full, rtol=0, atol=2e-3 * full.std())


# The newer archs on the device targets: OpenCL (PoCL in CI) F32 and quantized, qwen3 on the 910B emulator.
DEVICE_CASES = [
    ("llama", "llama_rope_freqs_f32_path", "opencl", 1.0, 0.01),
    ("qwen3", "qwen3_f32_path", "opencl", 1.0, 0.01),
    ("qwen3", "qwen3_q8_path", "opencl", 0.90, 0.15),
    ("qwen3", "qwen3_q8_path", "ascend910b", 0.90, 0.15),
    ("gemma3", "gemma3_f32_path", "opencl", 1.0, 0.01),
    ("gemma3", "gemma3_q8_path", "opencl", 0.90, 0.15),
    ("gemma2", "gemma2_f32_path", "opencl", 1.0, 0.01),
    ("gemma2", "gemma2_q8_path", "opencl", 0.90, 0.15),
    ("phi3", "phi3_f32_path", "opencl", 1.0, 0.01),
    ("phi3", "phi3_q8_path", "opencl", 0.90, 0.15),
]


@pytest.mark.parametrize("arch,fixture,target,top1,ratio", DEVICE_CASES,
                         ids=[f"{c[1]}-{c[2]}" for c in DEVICE_CASES])
def test_fixture_on_device_agrees_with_llama_cpp(arch, fixture, target, top1, ratio, request, oracle, tmp_path):
    from tests.opencl.harness import need_opencl

    if target == "opencl":
        need_opencl()
    path = request.getfixturevalue(fixture)
    result = compile_model(os.path.join(ARCHS, f"{arch}.llmc"), target, str(tmp_path), gguf=path)
    on_device = {n.op.value for n in result.graph.nodes() if n.device == target}
    assert {"matmul", "rope"} & on_device, f"nothing of {arch} ran on {target}: {on_device}"
    model = llmc.load(str(tmp_path), path, n_ctx=64, n_batch=16)       # 48 tokens: 3 batches of 16
    ids = fixture_tokens(model.n_vocab, 48, seed=3)
    ours, theirs = model.logits(ids), oracle.llama_logits(path, ids)
    print(arch, fixture, target, sorted(on_device), compare_logits(ours, theirs))
    assert_agrees(ours, theirs, top1_min=top1, ratio_max=ratio)
