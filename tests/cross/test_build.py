"""Cross builds (`llmc compile --cross aarch64`): the manifest names the machine, the objects are aarch64
with NEON dot products in the matmul kernels, each CPU level is its own cache entry, and loading an
aarch64 artifact here is a clear error. Running them is in test_runner.py and test_agreement_qemu.py."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import llmc
from llmc.codegen.c import build
from llmc.compiler.driver import compile_model
from llmc.ir.errors import LlmcError
from tests.cross.qemu import AARCH64, require_aarch64

# Weight types whose matmul has a NEON sdot path (codegen/c/templates/_neon.c.j2).
NEON_DOT_TYPES = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl", "mxfp4", "q4_k", "q6_k")


def _disassembly(library: Path) -> dict[str, str]:
    """Function name -> its disassembly, for the functions of an aarch64 library."""
    text = subprocess.run([AARCH64.objdump, "-d", "--no-show-raw-insn", str(library)], capture_output=True,
                          text=True, check=True).stdout
    functions, name = {}, None
    for line in text.splitlines():
        if line.endswith(">:"):
            name = line.split("<", 1)[1][:-2]
            functions[name] = ""
        elif name:
            functions[name] += line + "\n"
    return functions


def test_manifest_and_files_name_the_machine(llama_aarch64):
    manifest = json.loads(Path(llama_aarch64, "manifest.json").read_text())
    assert manifest["build"] == {"machine": "aarch64", "cross": "aarch64", "arch_flags": "armv8.2-a+dotprod",
                                 "runner": "bin/llmc-run"}
    for name in (build.LIBRARY, build.RUNNER):
        header = Path(llama_aarch64, name).read_bytes()[:20]
        assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183, name   # EM_AARCH64


def _kernel_object(artifact: str, weight_type: str, arch_flags: str, out: Path) -> str:
    """The artifact's matmul unit for weight_type compiled as the build compiles it; its disassembly."""
    tools = build.toolchain("aarch64", arch_flags)
    src = Path(artifact, "src")
    obj = out / f"matmul_{weight_type}-{arch_flags}.o"
    subprocess.run([tools.cc, *tools.cflags, "-I", str(src), "-c", str(src / f"matmul_{weight_type}.c"), "-o",
                    str(obj)], check=True, capture_output=True)
    return subprocess.run([AARCH64.objdump, "-d", str(obj)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("weight_type", NEON_DOT_TYPES)
def test_matmul_kernels_use_sdot(llama_aarch64, tmp_path, weight_type):
    """armv8.2-a+dotprod: the kernel's integer dot products are sdot; armv8-a: none (widening multiplies)."""
    assert _kernel_object(llama_aarch64, weight_type, "armv8.2-a+dotprod", tmp_path).count("\tsdot") >= 2
    plain = _kernel_object(llama_aarch64, weight_type, "armv8-a", tmp_path)
    assert "\tsdot" not in plain and "\tsmull" in plain


def test_plain_neon_build_has_no_sdot_and_its_own_cache_entry(tmp_path, llama_aarch64):
    require_aarch64()
    out = tmp_path / "plain"
    compile_model(llmc.arch_path("llama"), "c", str(out), cross="aarch64", arch_flags="armv8-a")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["build"]["arch_flags"] == "armv8-a"
    plain = (out / build.LIBRARY).read_bytes()
    assert plain != Path(llama_aarch64, build.LIBRARY).read_bytes()
    assert "\tsdot" not in "".join(_disassembly(out / build.LIBRARY).values())


def test_loading_an_aarch64_artifact_here_is_a_clear_error(llama_aarch64, llama_f32_path):
    with pytest.raises(LlmcError, match=r"was built for aarch64 .* this machine is x86_64"):
        llmc.load(llama_aarch64, llama_f32_path)


def test_cross_arguments_are_checked(tmp_path):
    with pytest.raises(LlmcError, match="unknown target; llmc cross-compiles for aarch64"):
        build.toolchain("riscv64")
    with pytest.raises(LlmcError, match="--arch-flags armv9-x: aarch64 takes armv8.2-a"):
        build.toolchain("aarch64", "armv9-x")
    with pytest.raises(LlmcError, match="give --cross too"):
        build.toolchain(None, "armv8-a")


def test_cli_cross_error_exits_1_without_traceback(tmp_path):
    import sys
    done = subprocess.run([sys.executable, "-m", "llmc.cli", "compile", "llama", "-o", str(tmp_path / "x"),
                           "--cross", "sparc"], capture_output=True, text=True)
    assert done.returncode == 1
    assert "unknown target" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("target", ["opencl", "adreno", "ascend310b", "ascend310p", "ascend910b"])
def test_accelerator_targets_cross_compile(tmp_path, target):
    """The host code of accelerator targets builds for aarch64 too: OpenCL's against the board's ICD loader
    (libOpenCL.so.1, needed at run time), AscendC's with its emulator."""
    require_aarch64()
    out = tmp_path / target
    compile_model(llmc.arch_path("qwen2"), target, str(out), cross="aarch64")
    needed = subprocess.run([AARCH64.objdump, "-p", str(out / build.LIBRARY)], capture_output=True, text=True,
                            check=True).stdout
    assert "file format elf64-littleaarch64" in needed
    assert ("NEEDED               libOpenCL.so.1" in needed) == (target in ("opencl", "adreno"))
    assert Path(out, build.RUNNER).read_bytes()[:4] == b"\x7fELF"
