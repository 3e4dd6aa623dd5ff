"""aarch64 artifacts shared by the cross tests: each is compiled once per session (objects and libraries
come from the build cache after the first run, so a repeat costs the code generation only)."""
from __future__ import annotations

import pytest

import llmc
from llmc.compiler.driver import compile_model
from tests.cross.qemu import require_aarch64


def _cross_artifact(tmp_path_factory, arch: str, target: str = "c", arch_flags: str | None = None) -> str:
    require_aarch64()
    out = tmp_path_factory.mktemp(f"{arch}-{target}-aarch64")
    compile_model(llmc.arch_path(arch), target, str(out), cross="aarch64", arch_flags=arch_flags)
    return str(out)


@pytest.fixture(scope="session")
def llama_aarch64(tmp_path_factory) -> str:
    return _cross_artifact(tmp_path_factory, "llama")


@pytest.fixture(scope="session")
def qwen2_aarch64(tmp_path_factory) -> str:
    return _cross_artifact(tmp_path_factory, "qwen2")


@pytest.fixture(scope="session")
def gpt_oss_aarch64(tmp_path_factory) -> str:
    return _cross_artifact(tmp_path_factory, "gpt_oss")


@pytest.fixture(scope="session")
def llama_native(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("llama-c-native")
    compile_model(llmc.arch_path("llama"), "c", str(out))
    return str(out)
