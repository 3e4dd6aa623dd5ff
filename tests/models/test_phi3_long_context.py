"""Phi-3 128k files above rope.scaling.original_context_length: llama.cpp switches to
rope_factors_long.weight there (runtime/context_size.py), which archs/phi3.llmc does not bind, so llmc
refuses such a context at load (reference and C targets) instead of computing the short-factor model.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import llmc
from llmc.compiler.driver import compile_model
from tests.fixtures.models import fixture_tokens

ARCH = os.path.join(os.path.dirname(__file__), "..", "..", "archs", "phi3.llmc")
KEY = "phi3.rope.scaling.original_context_length = 4096"


@pytest.fixture(scope="module")
def phi3_artifact(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("phi3-c"))
    compile_model(ARCH, "c", out)
    return out


def _load(target, path, artifact, n_ctx):
    return llmc.load(artifact if target == "c" else ARCH, path, n_ctx=n_ctx)


@pytest.mark.parametrize("target", ["reference", "c"])
@pytest.mark.parametrize("n_ctx", [8192, 4097])       # 4097: llama.cpp rounds it up to 4352, on the long factors
def test_long_rope_file_is_refused_above_the_original_context(target, n_ctx, phi3_long_rope_f32_path,
                                                              phi3_artifact):
    with pytest.raises(llmc.BindError) as err:
        _load(target, phi3_long_rope_f32_path, phi3_artifact, n_ctx)
    message = str(err.value)
    assert f"n_ctx = {n_ctx}" in message and KEY in message and "rope_factors_long.weight" in message
    assert "n_ctx <= 4096" in message


@pytest.mark.parametrize("target", ["reference", "c"])
def test_long_rope_file_loads_up_to_the_original_context(target, phi3_long_rope_f32_path, phi3_f32_path,
                                                         phi3_artifact):
    assert _load(target, phi3_long_rope_f32_path, phi3_artifact, 4096).n_ctx == 4096
    assert _load(target, phi3_long_rope_f32_path, phi3_artifact, None).n_ctx == 4096    # the default
    # a file without long factors ropes the same at any context in llama.cpp: nothing to refuse
    assert _load(target, phi3_f32_path, phi3_artifact, 8192).n_ctx == 8192


def test_cli_names_the_limit_without_a_traceback(phi3_long_rope_f32_path):
    run = subprocess.run([sys.executable, "-m", "llmc.cli", "run", ARCH, "-m", phi3_long_rope_f32_path, "-p", "a",
                          "-n", "1", "--ctx", "8192"], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert KEY in run.stderr and "Traceback" not in run.stderr


def test_llama_cpp_computes_another_model_above_the_limit(phi3_long_rope_f32_path, oracle):
    """Why the refusal: llama.cpp's logits on the same tokens change once n_ctx passes 4096 (long factors
    4..16 against short 1..4), while llmc's short-factor model matches its n_ctx = 4096 run."""
    model = llmc.load(ARCH, phi3_long_rope_f32_path, n_ctx=4096)
    ids = fixture_tokens(model.n_vocab, 32)
    short = oracle.llama_logits(phi3_long_rope_f32_path, ids, n_ctx=4096)
    long = oracle.llama_logits(phi3_long_rope_f32_path, ids, n_ctx=8192)
    ours = model.logits(ids)
    scale = float(np.std(short))
    assert np.median(np.abs(ours - short).max(axis=1)) <= 0.01 * scale
    assert np.median(np.abs(long - short).max(axis=1)) > 0.1 * scale
