"""Phi-3 128k files above rope.scaling.original_context_length: llama.cpp ropes with
rope_factors_long.weight once the context, rounded up to a multiple of 256, exceeds it. archs/phi3.llmc
binds that tensor by a load-time choice on n_ctx; an architecture that binds only the short factors is
refused such a context at load (runtime/context_size.py) instead of computing another model.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import llmc
from llmc.agreement import assert_agrees, compare_logits
from llmc.compiler.driver import compile_model
from tests.fixtures.models import fixture_tokens

ARCH = os.path.join(os.path.dirname(__file__), "..", "..", "archs", "phi3.llmc")
KEY = "phi3.rope.scaling.original_context_length = 4096"


@pytest.fixture(scope="module")
def phi3_artifact(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("phi3-c"))
    compile_model(ARCH, "c", out)
    return out


def _load(target, path, artifact, n_ctx, arch=ARCH):
    return llmc.load(artifact if target == "c" else arch, path, n_ctx=n_ctx)


@pytest.mark.parametrize("target", ["reference", "c"])
@pytest.mark.parametrize("n_ctx", [4096, 4097, 8192])   # 4097: llama.cpp rounds it up to 4352, on the long factors
def test_long_rope_file_agrees_with_llama_cpp_at_its_context(target, n_ctx, phi3_long_rope_f32_path,
                                                             phi3_artifact, oracle):
    model = _load(target, phi3_long_rope_f32_path, phi3_artifact, n_ctx)
    assert model.n_ctx == n_ctx
    ids = fixture_tokens(model.n_vocab, 48, seed=3)
    ours, theirs = model.logits(ids), oracle.llama_logits(phi3_long_rope_f32_path, ids, n_ctx=n_ctx)
    print(target, n_ctx, compare_logits(ours, theirs))
    assert_agrees(ours, theirs, top1_min=1.0, ratio_max=0.01)


def test_the_long_factors_make_another_model(phi3_long_rope_f32_path, oracle):
    """The check above can fail: llama.cpp's logits on the same tokens move by about one std once n_ctx
    passes 4096 (long factors 4..16 against short 1..4), and ours move with them."""
    ids = fixture_tokens(llmc.load(ARCH, phi3_long_rope_f32_path, n_ctx=4096).n_vocab, 32)
    short = oracle.llama_logits(phi3_long_rope_f32_path, ids, n_ctx=4096)
    long = oracle.llama_logits(phi3_long_rope_f32_path, ids, n_ctx=8192)
    assert np.median(np.abs(long - short).max(axis=1)) > 0.5 * np.std(short)
    ours = llmc.load(ARCH, phi3_long_rope_f32_path, n_ctx=8192).engine.binding
    assert [t.name for t in ours.weights[_factors_node(ours)]] == ["rope_factors_long.weight"]


def _factors_node(binding) -> int:
    return next(nid for nid, infos in binding.weights.items()
                if infos and infos[0] is not None and infos[0].name.startswith("rope_factors_"))


@pytest.fixture(scope="module")
def short_only_arch(tmp_path_factory) -> str:
    """phi3.llmc as it was before the choice: the short factors only."""
    src = open(ARCH).read()
    start = src.index("optional weight rope_factors")
    end = src.index("[n_rot / 2]", start)
    src = src[:start] + 'optional weight rope_factors = "rope_factors_short.weight" ' + src[end:]
    path = tmp_path_factory.mktemp("arch") / "phi3.llmc"
    path.write_text(src)
    return str(path)


@pytest.mark.parametrize("n_ctx", [8192, 4097])
def test_an_arch_without_the_long_factors_is_refused_above_the_limit(n_ctx, phi3_long_rope_f32_path,
                                                                     short_only_arch):
    with pytest.raises(llmc.BindError) as err:
        _load("reference", phi3_long_rope_f32_path, None, n_ctx, arch=short_only_arch)
    message = str(err.value)
    assert f"n_ctx = {n_ctx}" in message and KEY in message and "rope_factors_long.weight" in message
    assert "n_ctx <= 4096" in message
    assert _load("reference", phi3_long_rope_f32_path, None, None, arch=short_only_arch).n_ctx == 4096


def test_cli_names_the_limit_without_a_traceback(phi3_long_rope_f32_path, short_only_arch):
    run = subprocess.run([sys.executable, "-m", "llmc.cli", "run", short_only_arch, "-m", phi3_long_rope_f32_path,
                          "-p", "a", "-n", "1", "--ctx", "8192"], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert KEY in run.stderr and "Traceback" not in run.stderr
