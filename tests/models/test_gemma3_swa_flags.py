"""Gemma 3 files whose attention.sliding_window_pattern is one bool per layer (newer converters) instead of
a period: archs/gemma3.llmc reads them with meta_period() as llama.cpp's load_swa_pattern does, and
refuses flags that no period reproduces (ir/bind.py flags_period)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import llmc
from llmc.agreement import assert_agrees, compare_logits
from llmc.compiler.driver import compile_model
from tests.fixtures.gemma import write_gemma3
from tests.fixtures.models import fixture_tokens

ARCH = os.path.join(os.path.dirname(__file__), "..", "..", "archs", "gemma3.llmc")


@pytest.fixture(scope="module")
def gemma3_artifact(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("gemma3-c"))
    compile_model(ARCH, "c", out)
    return out


def _load(target, path, artifact):
    return llmc.load(artifact if target == "c" else ARCH, path, n_ctx=128)


@pytest.mark.parametrize("target", ["reference", "c"])
def test_per_layer_flags_agree_with_llama_cpp(target, gemma3_swa_flags_f32_path, gemma3_artifact, oracle):
    model = _load(target, gemma3_swa_flags_f32_path, gemma3_artifact)
    ids = fixture_tokens(model.n_vocab, 48, seed=3)            # 48 tokens cross the window of 8
    ours, theirs = model.logits(ids), oracle.llama_logits(gemma3_swa_flags_f32_path, ids)
    print(target, compare_logits(ours, theirs))
    assert_agrees(ours, theirs, top1_min=1.0, ratio_max=0.01)


def test_flags_are_read_as_their_period(gemma3_swa_flags_f32_path, tmp_path, oracle):
    """[SWA, SWA, SWA, global] is period 4; the same model written with the period itself gives the same
    logits in llama.cpp, and the default period 6 (layer 3 SWA as well) gives other ones: the fixture
    tells a misread pattern from the right one."""
    model = llmc.load(ARCH, gemma3_swa_flags_f32_path, n_ctx=128)
    assert model.engine.binding.params["swa_pattern"] == 4
    ids = fixture_tokens(model.n_vocab, 48, seed=3)
    flags = oracle.llama_logits(gemma3_swa_flags_f32_path, ids)
    period4 = write_gemma3(tmp_path / "p4.gguf", weight_type="F32", n_layer=4, swa_pattern=4)
    period6 = write_gemma3(tmp_path / "p6.gguf", weight_type="F32", n_layer=4, swa_pattern=6)
    assert np.array_equal(oracle.llama_logits(period4, ids), flags)
    assert np.median(np.abs(oracle.llama_logits(period6, ids) - flags).max(axis=1)) > 0.05 * np.std(flags)


@pytest.mark.parametrize("target", ["reference", "c"])
def test_flags_no_period_gives_are_refused(target, tmp_path, gemma3_artifact):
    path = write_gemma3(tmp_path / "odd.gguf", weight_type="F32", n_layer=4, swa_pattern=[True, False, False, True])
    with pytest.raises(llmc.BindError) as err:
        _load(target, path, gemma3_artifact)
    assert "'gemma3.attention.sliding_window_pattern'" in str(err.value)
    assert "layer 2 is not flagged" in str(err.value)


def test_an_array_where_a_number_is_read_is_refused(tmp_path):
    """A plain meta() param given an array names the key instead of computing with a list."""
    path = write_gemma3(tmp_path / "flags.gguf", weight_type="F32", n_layer=4, swa_pattern=[True, True, True, False])
    src = open(ARCH).read().replace('meta_period("{arch}.attention.sliding_window_pattern"',
                                    'meta("{arch}.attention.sliding_window_pattern"')
    arch = tmp_path / "gemma3.llmc"
    arch.write_text(src)
    with pytest.raises(llmc.BindError, match="'gemma3.attention.sliding_window_pattern' holds an array of 4"):
        llmc.load(str(arch), path, n_ctx=128)
