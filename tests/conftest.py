"""Session-wide model files: the real SmolLM2 and small random-weight fixtures (tests/fixtures/models.py).

Each fixture file is written once per test session into its own tmp_path_factory directory (~50 ms each).
"""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.fixtures import models


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With LLMC_FORBID_SKIPS set (CI sets it), a skip is a failure: CI has every tool, model and oracle, so a
    skipped check there means a check that silently did not run."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("LLMC_FORBID_SKIPS") and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI (LLMC_FORBID_SKIPS): {reason}"


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """SmolLM2-135M-Instruct Q4_1 (llama arch, tied embeddings), from the cache or downloaded once."""
    from llmc import fetch

    try:
        return fetch.smollm2()
    except (OSError, subprocess.CalledProcessError, fetch.FetchError) as exc:
        pytest.skip(f"SmolLM2 is not cached and could not be downloaded: {exc}")


@pytest.fixture(scope="session")
def gemma3_270m_path() -> str:
    """Gemma 3 270M Q4_K_M (gemma3 arch, SentencePiece vocabulary), from the cache or downloaded once."""
    from llmc import fetch

    try:
        return fetch.gemma3_270m()
    except (OSError, fetch.FetchError) as exc:
        pytest.skip(f"Gemma 3 270M is not cached and could not be downloaded: {exc}")


def _write(tmp_path_factory, name: str, writer, **kwargs) -> str:
    return writer(tmp_path_factory.mktemp("models") / f"{name}.gguf", **kwargs)


@pytest.fixture(scope="session")
def qwen2_q8_path(tmp_path_factory) -> str:
    """qwen2, all 2-D weights Q8_0, untied output.weight."""
    return _write(tmp_path_factory, "qwen2-q8_0", models.write_qwen2, weight_type="Q8_0")


@pytest.fixture(scope="session")
def qwen2_q4_0_tied_path(tmp_path_factory) -> str:
    """qwen2, all 2-D weights Q4_0 (token_embd too), no output.weight: the lm head is token_embd."""
    return _write(tmp_path_factory, "qwen2-q4_0-tied", models.write_qwen2, weight_type="Q4_0", tied=True)


@pytest.fixture(scope="session")
def qwen2_f32_path(tmp_path_factory) -> str:
    """qwen2, every tensor F32: llama.cpp does no activation quantization, so compare tightly."""
    return _write(tmp_path_factory, "qwen2-f32", models.write_qwen2, weight_type="F32")


@pytest.fixture(scope="session")
def gpt_oss_path(tmp_path_factory) -> str:
    """gpt-oss, experts MXFP4, other 2-D weights Q8_0 (like ggml-org's gpt-oss-20b-mxfp4.gguf)."""
    return _write(tmp_path_factory, "gpt-oss-mxfp4", models.write_gpt_oss, expert_type="MXFP4",
                  weight_type="Q8_0")


@pytest.fixture(scope="session")
def gpt_oss_f32_path(tmp_path_factory) -> str:
    """gpt-oss, every tensor F32 (experts too)."""
    return _write(tmp_path_factory, "gpt-oss-f32", models.write_gpt_oss, expert_type="F32", weight_type="F32")


@pytest.fixture(scope="session")
def llama_f32_path(tmp_path_factory) -> str:
    """llama (NORM rope, GQA 3), every tensor F32, untied."""
    return _write(tmp_path_factory, "llama-f32", models.write_llama, weight_type="F32")


@pytest.fixture(scope="session")
def oracle():
    """llmc.oracle if llama-cpp-python is installed; skips the test otherwise."""
    from llmc import oracle as oracle_module

    try:
        oracle_module.require()
    except oracle_module.OracleUnavailable as exc:
        pytest.skip(str(exc))
    return oracle_module
