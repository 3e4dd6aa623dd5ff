"""Whole models on the OpenCL target (PoCL in CI) against llama.cpp and against the C target.

SmolLM2 Q4_1 runs on the generic `opencl` profile (everything but the Q8_0 embedding lookup on the
device); a random-weight Q4_0 qwen2 on `adreno`. Weight types the adreno profile doesn't claim either
fall back to the CPU (its policy) or, with `unsupported = "refuse"`, stop the compile. Generic artifacts
(compiled without a file) are tested in test_generic.py."""
from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
from llmc.compiler.devices import DEVICES_DIR
from llmc.compiler.driver import compile_model

import llmc
from llmc.agreement import assert_same_greedy, assert_agrees, compare_logits
from tests.fixtures.models import fixture_tokens, write_qwen2
from tests.models.test_agreement import TEXT
from tests.opencl.harness import need_opencl

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")


def _compile(arch, target, out_dir, gguf=None, profiles_dir=None):
    """compile_model for an OpenCL profile; returns the partitioned graph and the manifest."""
    kw = {"profiles_dir": profiles_dir} if profiles_dir else {}
    result = compile_model(os.path.join(ARCHS, f"{arch}.llmc"), target, out_dir, gguf=gguf, **kw)
    return result.graph, result.manifest


@pytest.fixture(scope="module")
def smollm2_opencl(smollm2_path, tmp_path_factory):
    need_opencl()
    out = tmp_path_factory.mktemp("smollm2-opencl")
    graph, _ = _compile("llama", "opencl", str(out), gguf=smollm2_path)
    on_device = [n for n in graph.nodes() if n.device == "opencl" and n.op.value not in ("weight", "reshape")]
    assert len(on_device) > 15
    return str(out)


@pytest.fixture(scope="module")
def qwen2_q4_0_path(tmp_path_factory):
    return write_qwen2(tmp_path_factory.mktemp("models") / "qwen2-q4_0.gguf", weight_type="Q4_0")


def test_smollm2_agrees_with_llama_cpp(smollm2_opencl, smollm2_path, oracle):
    model = llmc.load(smollm2_opencl, smollm2_path, n_ctx=128, n_batch=128)
    ids = model.tokenize(TEXT)
    ours = model.logits(ids)
    theirs = oracle.llama_logits(smollm2_path, ids)
    print("opencl", compare_logits(ours, theirs))
    assert_agrees(ours, theirs, top1_min=0.95, ratio_max=0.15)


def test_smollm2_greedy_equals_c_target(smollm2_opencl, smollm2_path, tmp_path):
    """32 greedy tokens equal the C target's, except where the numpy reference sees a near-tie (top-2
    logits < 0.1 apart): there targets differ only in f32 summation order (on "The three primary colours
    are" step 18 is such a tie, 0.02 apart in the reference)."""
    compile_model(os.path.join(ARCHS, "llama.llmc"), "c", str(tmp_path / "c"))
    c = llmc.load(str(tmp_path / "c"), smollm2_path, n_ctx=128)
    cl = llmc.load(smollm2_opencl, smollm2_path, n_ctx=128)
    ref = llmc.load(os.path.join(ARCHS, "llama.llmc"), smollm2_path, n_ctx=128)
    for text in ("The capital of France is", "The three primary colours are"):
        prompt = c.tokenize(text)
        assert_same_greedy(c, cl, prompt, 32, judge=ref)
    t0 = time.perf_counter()
    cl.generate_ids(prompt, 16, stop_at_eos=False)
    print(f"decode tok/s: C {c.stats.decode_tok_s:.1f}, OpenCL on {need_opencl().name} "
          f"{cl.stats.decode_tok_s or 16 / (time.perf_counter() - t0):.1f}")


def test_qwen2_q4_0_on_adreno_agrees_with_llama_cpp(qwen2_q4_0_path, oracle, tmp_path):
    need_opencl()
    graph, _ = _compile("qwen2", "adreno", str(tmp_path), gguf=qwen2_q4_0_path)
    matmuls = [n for n in graph.nodes() if n.op.value == "matmul"]
    assert matmuls and all(n.device == "adreno" for n in matmuls)
    model = llmc.load(str(tmp_path), qwen2_q4_0_path, n_ctx=64)
    ids = fixture_tokens(model.n_vocab, 48, seed=3)
    ours = model.logits(ids)
    theirs = oracle.llama_logits(qwen2_q4_0_path, ids)
    print("adreno qwen2 q4_0", compare_logits(ours, theirs))
    assert_agrees(ours, theirs, top1_min=0.90, ratio_max=0.15)
    # decode steps after a prefill continue the device KV cache
    model.engine.reset()
    steps = [model.engine.forward(np.array(ids[:5], np.int32), True)]
    steps += [model.engine.forward(np.array(ids[k:k + 1], np.int32), True) for k in range(5, 12)]
    np.testing.assert_allclose(np.concatenate(steps), ours[:12], rtol=0, atol=2e-3 * ours.std())


def test_adreno_falls_back_for_q8_0_matmuls(qwen2_q8_path, oracle, tmp_path):
    """The adreno profile's policy is `fallback`: Q8_0 matmuls run in C, the rest on the device."""
    need_opencl()
    graph, _ = _compile("qwen2", "adreno", str(tmp_path), gguf=qwen2_q8_path)
    matmuls = [n for n in graph.nodes() if n.op.value == "matmul"]
    assert all(n.device == "cpu" for n in matmuls)
    assert any(n.device == "adreno" for n in graph.nodes() if n.op.value == "attention")
    assert "re-quantize" in matmuls[0].placement
    model = llmc.load(str(tmp_path), qwen2_q8_path, n_ctx=64)
    ids = fixture_tokens(model.n_vocab, 48, seed=3)
    assert_agrees(model.logits(ids), oracle.llama_logits(qwen2_q8_path, ids), top1_min=0.90, ratio_max=0.15)


def test_adreno_refuses_q8_0_when_the_profile_says_so(qwen2_q8_path, tmp_path):
    profiles = tmp_path / "devices"
    shutil.copytree(DEVICES_DIR, profiles)
    adreno = profiles / "adreno.toml"
    adreno.write_text(adreno.read_text().replace('unsupported = "fallback"', 'unsupported = "refuse"'))
    with pytest.raises(llmc.LlmcError, match=r"llama-quantize --pure .* Q4_0"):
        _compile("qwen2", "adreno", str(tmp_path / "art"), gguf=qwen2_q8_path, profiles_dir=str(profiles))


def test_opencl_artifact_refuses_more_than_one_sequence(smollm2_opencl, smollm2_path):
    """The batched multi-sequence forward (llmc serve -np N) is C-target only: attention on the device keeps
    one KV cache, so the artifact says so at load."""
    with pytest.raises(llmc.LlmcError, match="attention on an accelerator, which keeps one sequence"):
        llmc.load(smollm2_opencl, smollm2_path, n_ctx=64, n_seq=2)
