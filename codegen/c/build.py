"""Write a C artifact's sources and build its shared library with the system C compiler.

Two caches, both under LLMC_CACHE/build (default ~/.cache/llmc/build):

- objects: every translation unit (model.c, each kernel file, the runtime's .c files, accelerator .cpp
  files) is compiled on its own into `obj/<key>.o`, where the key hashes the unit's text, the text of the
  local headers it includes (transitively), the compiler's identity and flags and the host CPU (flags
  carry -march=native, or the cross target's -march). Kernels do not depend on the model, so a new architecture compiles only its
  model.c (and any kernel text no earlier build produced); missing units compile in parallel, one job per
  core.
- libraries: the linked library, keyed by every source's hash, the toolchain and the link flags; a repeat
  compile of the same input copies it and runs no compiler at all.

Most of a kernel unit's compile time is the compiler reading the SIMD intrinsics headers (about 0.2 s
of a 0.25 s unit on x86 with -march=native). Those system headers are precompiled once per toolchain
(`pch/<key>/llmc_prelude.h.gch`, gcc's precompiled headers) and given to every C unit with `-include`;
a unit that defines a feature-test macro before its first #include (llmc_threads.c: _GNU_SOURCE) must
see the system headers after it and is compiled without. A compiler that cannot use the prelude's
precompiled form reads it as a plain header: slower, same result.

Cross builds (`llmc compile --cross aarch64`) take their compilers and -march from CROSS_TARGETS, one
entry per machine; their keys carry those instead of the host CPU, never -march=native. The artifact also
gets `bin/llmc-run` (runtime/c/llmc_run.c linked against the library), which runs a model with no Python.

Files are published with an atomic rename, so concurrent compiles never see a half-written object.
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llmc import fetch
from llmc.ir.errors import LlmcError

from . import kernels, matmul

RUNTIME_C = Path(__file__).resolve().parents[2] / "runtime" / "c"
RUNTIME_FILES = ("llmc_common.h", "llmc_gguf.h", "llmc_gguf.c", "llmc_threads.h", "llmc_threads.c",
                 "llmc_kernels.h", "llmc_weight_types.h", "llmc_runtime.h", "llmc_runtime.c",
                 "llmc_run.c")
NATIVE_ARCH = ["-march=native"]
_C_COMMON = ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-D_DEFAULT_SOURCE", "-fPIC", "-fvisibility=hidden",
             "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"]
CFLAGS = ["-O3", *NATIVE_ARCH, *_C_COMMON]
CXXFLAGS = ["-O2", "-std=c++17", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"]
LIBRARY = "libllmc_model.so"
RUNNER_SOURCE = "llmc_run.c"          # bin/llmc-run's source: in src/ with the rest, not part of the library
RUNNER = "bin/llmc-run"


@dataclass(frozen=True)
class CrossTarget:
    """A machine llmc builds artifacts for from this one (Debian package names in `packages`)."""
    machine: str                              # platform.machine() on the board; the manifest records it
    cc: str
    cxx: str
    objdump: str
    sysroot: str                              # the target's libc, for qemu-user's -L
    emulator: str                             # qemu-user, to run the build here
    packages: str
    arch_flags: dict[str, tuple[str, ...]]    # --arch-flags NAME -> compiler flags
    default_arch: str


# One entry per cross target. armv8.2-a+dotprod is what the boards' cores (Cortex-A55/A76/A78, Kunpeng
# 920's TaiShan v110) implement: the NEON kernels use its sdot (vdotq_s32). armv8-a is the plain-NEON
# fallback for older cores; the kernels then take their portable integer paths.
CROSS_TARGETS: dict[str, CrossTarget] = {
    "aarch64": CrossTarget(
        machine="aarch64", cc="aarch64-linux-gnu-gcc", cxx="aarch64-linux-gnu-g++",
        objdump="aarch64-linux-gnu-objdump", sysroot="/usr/aarch64-linux-gnu", emulator="qemu-aarch64",
        packages="gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user",
        arch_flags={"armv8.2-a+dotprod": ("-march=armv8.2-a+dotprod",), "armv8-a": ("-march=armv8-a",)},
        default_arch="armv8.2-a+dotprod"),
}


@dataclass(frozen=True)
class Toolchain:
    """The compilers and flags of one build: this machine's (cross None) or a cross target's."""
    cc: str
    cxx: str
    arch: tuple[str, ...]                     # -march flags
    machine: str
    cross: str | None = None
    arch_name: str = "native"

    @property
    def cflags(self) -> list[str]:
        return ["-O3", *self.arch, *_C_COMMON]

    @property
    def cxxflags(self) -> list[str]:
        return CXXFLAGS if self.cross is None else [CXXFLAGS[0], *self.arch, *CXXFLAGS[1:]]

    def manifest(self) -> dict:
        return {"machine": self.machine, "cross": self.cross, "arch_flags": self.arch_name}


def toolchain(cross: str | None = None, arch_flags: str | None = None) -> Toolchain:
    """This machine's toolchain ($CC/$CXX, -march=native), or the cross target's, checked to be installed."""
    if cross is None:
        if arch_flags is not None:
            raise LlmcError("--arch-flags chooses the CPU of a cross build; give --cross too")
        return Toolchain(os.environ.get("CC", "cc"), os.environ.get("CXX", "c++"), tuple(NATIVE_ARCH),
                         platform.machine())
    target = CROSS_TARGETS.get(cross)
    if target is None:
        raise LlmcError(f"--cross {cross}: unknown target; llmc cross-compiles for {', '.join(CROSS_TARGETS)}")
    name = arch_flags or target.default_arch
    if name not in target.arch_flags:
        raise LlmcError(f"--arch-flags {name}: {cross} takes {', '.join(target.arch_flags)}")
    for tool in (target.cc, target.cxx):
        if shutil.which(tool) is None:
            raise LlmcError(f"--cross {cross} needs {tool}, which is not installed (Debian: apt-get install "
                            f"{target.packages})")
    return Toolchain(target.cc, target.cxx, target.arch_flags[name], target.machine, cross, name)
_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)
# A feature-test macro (#define _GNU_SOURCE, ...) before the first #include: the unit takes no prelude.
_FEATURE_MACRO_FIRST = re.compile(r'\A(?:(?!^\s*#\s*include).)*^\s*#\s*define\s+_', re.MULTILINE | re.DOTALL)
# System headers the generated units include, for the precompiled prelude.
PRELUDE = """/* System headers of llmc's generated C, precompiled once per toolchain (codegen/c/build.py). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif
"""


def kernel_sources() -> dict[str, str]:
    """Every kernel, for every weight type: file name -> C source."""
    out = {f"matmul_{t.lower()}.c": matmul.render_matmul(t) for t in matmul.MATMUL_TYPES}
    for name, family in kernels.KERNELS.items():
        for t in family.weight_types or (None,):
            out[f"{name}{'_' + t.lower() if t else ''}.c"] = kernels.render_kernel(name, t)
    return out


def cache_dir() -> Path:
    path = Path(fetch.cache_dir()) / "build"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_sources(out_dir: Path, model_c: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Write model.c, the kernels, the runtime C and any accelerator sources (extra: name -> text) into
    out_dir/src; returns name -> sha256."""
    src = out_dir / "src"
    src.mkdir(parents=True, exist_ok=True)
    files = {"model.c": model_c, **kernel_sources(), **(extra or {})}
    for name in RUNTIME_FILES:
        files[name] = (RUNTIME_C / name).read_text()
    for name, text in files.items():
        (src / name).write_text(text)
    return {name: hashlib.sha256(text.encode()).hexdigest() for name, text in sorted(files.items())}


def build(out_dir: Path, hashes: dict[str, str], link_flags: list[str] | None = None,
          tools: Toolchain | None = None) -> tuple[Path, bool]:
    """Compile out_dir/src/*.c (and *.cpp, from accelerator emitters) into out_dir/LIBRARY and link
    out_dir/RUNNER against it; returns (library path, whether the library cache served it). Objects come
    from the object cache where it has them."""
    tools = tools or toolchain()
    cc, cxx = tools.cc, tools.cxx
    link_flags, search = _cross_link_flags(tools, list(link_flags or []))
    # the runner takes the library's undefined symbols on trust when the library does (a cross OpenCL build)
    runner_flags = [f for f in link_flags if f == "-Wl,--allow-shlib-undefined"]
    key_of_tools = _toolchain(tools)
    key = _digest("\n".join(f"{k} {v}" for k, v in hashes.items()), key_of_tools, *link_flags)
    cached = cache_dir() / f"{key[:24]}.so"
    cached_runner = cache_dir() / f"{key[:24]}.run"
    target = out_dir / LIBRARY
    runner = out_dir / RUNNER
    runner.parent.mkdir(parents=True, exist_ok=True)
    if cached.exists() and cached_runner.exists():
        _publish(cached, target, cached_runner, runner)
        return target, True
    src = out_dir / "src"
    # only the units this compile wrote: an artifact directory compiled into before may hold others
    units = [src / name for name in sorted(hashes) if name.endswith((".c", ".cpp")) and name != RUNNER_SOURCE]
    prelude = {unit: _takes_prelude(unit) for unit in units}
    objects = [_object(unit, key_of_tools, prelude[unit]) for unit in units]
    runner_unit = src / RUNNER_SOURCE
    runner_obj = _object(runner_unit, key_of_tools, False)
    missing = [(unit, obj) for unit, obj in zip(units, objects) if not obj.exists()]
    if not runner_obj.exists():
        missing.append((runner_unit, runner_obj))
    missing.sort(key=lambda pair: -pair[0].stat().st_size)      # longest first: the cores finish together
    forced = ["-include", str(_prelude(tools, key_of_tools))] if any(prelude.get(u) for u, _ in missing) else []
    _run_parallel([[*_compiler(unit, tools), *(forced if prelude.get(unit) else []), *search, "-I", str(src),
                    "-c", str(unit)] for unit, _ in missing], [obj for _, obj in missing])
    linker = cxx if any(u.suffix == ".cpp" for u in units) else cc
    _run_parallel([[linker, "-shared", f"-Wl,-soname,{LIBRARY}", "-pthread", *map(str, objects), "-lm",
                    *link_flags]], [cached])
    # The runner finds the library beside its directory wherever the artifact is copied ($ORIGIN).
    _run_parallel([[linker, "-pthread", str(runner_obj), str(cached), "-lm", "-Wl,-rpath,$ORIGIN/..", *runner_flags]],
                  [cached_runner])
    _publish(cached, target, cached_runner, runner)
    return target, False


def _publish(library: Path, target: Path, runner: Path, runner_target: Path) -> None:
    shutil.copyfile(library, target)
    shutil.copyfile(runner, runner_target)
    runner_target.chmod(0o755)


def _cross_link_flags(tools: Toolchain, link_flags: list[str]) -> tuple[list[str], list[str]]:
    """Link flags and extra include flags for a cross build. The OpenCL ICD loader and headers of the
    board are not installed here: a cross build compiles against this machine's Khronos headers (copied
    apart from the host's other headers) and links against a stub libOpenCL.so.1 of the target, so the
    library needs the board's libOpenCL.so.1 as a native build needs this machine's."""
    if tools.cross is None or "-lOpenCL" not in link_flags:
        return link_flags, []
    folder = cache_dir() / "cross" / f"opencl-{_toolchain(tools)[:16]}"
    stub = folder / "lib" / "libOpenCL.so"
    headers = folder / "include" / "CL"
    if not headers.is_dir():
        if not Path("/usr/include/CL/cl.h").is_file():
            raise LlmcError("a cross build for OpenCL needs the Khronos headers (Debian: opencl-headers)")
        tmp = Path(tempfile.mkdtemp(dir=cache_dir()))
        shutil.copytree("/usr/include/CL", tmp / "CL")
        headers.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp / "CL", headers)
        except OSError:
            pass                                   # another build published them first
        shutil.rmtree(tmp, ignore_errors=True)
    if not stub.exists():
        stub.parent.mkdir(parents=True, exist_ok=True)
        empty = folder / "stub.c"
        empty.write_text("/* link-time stand-in for the board's OpenCL ICD loader (codegen/c/build.py) */\n")
        _run_parallel([[tools.cc, "-shared", "-fPIC", "-Wl,-soname,libOpenCL.so.1", str(empty)]], [stub])
    rest = [f for f in link_flags if f != "-lOpenCL"]
    return [*rest, "-Wl,--allow-shlib-undefined", f"-L{stub.parent}", "-Wl,--no-as-needed", "-lOpenCL",
            "-Wl,--as-needed"], ["-I", str(folder / "include")]


def _compiler(unit: Path, tools: Toolchain) -> list[str]:
    return [tools.cxx, *tools.cxxflags] if unit.suffix == ".cpp" else [tools.cc, *tools.cflags]


def _takes_prelude(unit: Path) -> bool:
    return unit.suffix == ".c" and not _FEATURE_MACRO_FIRST.search(unit.read_text())


def _prelude(tools: Toolchain, key: str) -> Path:
    """The prelude header, with its precompiled form beside it when the compiler can make one."""
    folder = cache_dir() / "pch" / _digest(key, PRELUDE)[:24]
    header = folder / "llmc_prelude.h"
    if not header.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(PRELUDE)
        os.replace(tmp, header)
    compiled = folder / "llmc_prelude.h.gch"
    if not compiled.exists() and not (folder / "no-pch").exists():
        try:
            _run_parallel([[tools.cc, *tools.cflags, "-x", "c-header", str(header)]], [compiled])
        except LlmcError:
            (folder / "no-pch").touch()       # this compiler makes no precompiled header: read it as text
    return header


def _object(unit: Path, toolchain: str, prelude: bool) -> Path:
    """Where the unit's object lives in the cache: keyed by its text, the local headers it includes and
    the prelude it was compiled with."""
    texts = [unit.read_text()]
    seen: set[str] = set()
    pending = _INCLUDE.findall(texts[0])
    while pending:
        name = pending.pop()
        header = unit.parent / name
        if name in seen or not header.is_file():
            continue                              # a system header: the compiler's identity covers it
        seen.add(name)
        text = header.read_text()
        texts.append(f"{name}\n{text}")
        pending += _INCLUDE.findall(text)
    key = _digest(unit.suffix, toolchain, PRELUDE if prelude else "", *sorted(texts[1:]), texts[0])
    return cache_dir() / "obj" / f"{key}.o"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@functools.cache
def _toolchain(tools: Toolchain) -> str:
    """What besides the sources decides an object: the compilers (path and version), the flags, and for a
    native build the host CPU, because -march=native compiles for it."""
    parts = [" ".join(tools.cflags), " ".join(tools.cxxflags), platform.machine()]
    if tools.cross is not None:
        parts += ["cross", tools.cross, tools.machine]
    for compiler in (tools.cc, tools.cxx):
        path = shutil.which(compiler)
        try:
            version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
        except OSError:
            version = "missing"                 # reported when it is needed, by the compile itself
        parts += [compiler, str(path), version]
    if tools.cross is not None:
        return _digest(*parts)                  # the target's CPU is named by its -march, not this one's
    try:
        with open("/proc/cpuinfo") as f:
            parts += sorted({line for line in f if line.startswith(("flags", "Features", "model name", "CPU part"))})
    except OSError:
        parts.append(platform.processor())
    return _digest(*parts)


def _run_parallel(commands: list[list[str]], outputs: list[Path]) -> None:
    """Run `command -o tmp` for each output, up to one job per core; each output is published by an atomic
    rename once its command succeeded."""
    jobs: list[tuple[subprocess.Popen, Path, Path]] = []
    try:
        for command, out in zip(commands, outputs):
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
            os.close(fd)
            proc = subprocess.Popen([*command, "-o", tmp], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
            jobs.append((proc, Path(tmp), out))
            if len(jobs) >= (os.cpu_count() or 2):
                _finish(*jobs.pop(0))
        while jobs:
            _finish(*jobs.pop(0))
    finally:
        for proc, tmp, _ in jobs:              # only after a failure: stop the rest, drop their output
            proc.kill()
            proc.wait()
            tmp.unlink(missing_ok=True)


def _finish(proc: subprocess.Popen, tmp: Path, out: Path) -> None:
    output, _ = proc.communicate()
    if proc.returncode != 0 or (output and "warning" in output):
        tmp.unlink(missing_ok=True)
        raise LlmcError(f"the C compiler failed on generated code (a bug in llmc):\n{' '.join(proc.args)}\n{output}")
    os.replace(tmp, out)
