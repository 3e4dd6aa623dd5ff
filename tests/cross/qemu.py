"""Running aarch64 builds on this x86 machine: the cross toolchain and qemu-user (CROSS_TARGETS in
codegen/c/build.py names both). A missing tool is a skip that names it; CI installs them (.ci/run), and a
skip fails there (LLMC_FORBID_SKIPS)."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from llmc.codegen.c.build import CROSS_TARGETS

AARCH64 = CROSS_TARGETS["aarch64"]


def require_aarch64() -> None:
    missing = [t for t in (AARCH64.cc, AARCH64.cxx, AARCH64.objdump, AARCH64.emulator) if shutil.which(t) is None]
    if missing:
        pytest.skip(f"no {', '.join(missing)} (Debian: apt-get install {AARCH64.packages})")


def qemu(args: list[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run an aarch64 program under qemu-user with the target's libc."""
    return subprocess.run([AARCH64.emulator, "-L", AARCH64.sysroot, *args], capture_output=True, timeout=timeout,
                          **kwargs)
