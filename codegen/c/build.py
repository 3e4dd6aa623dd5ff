"""Write a C artifact's sources and build its shared library with the system C compiler.

Two caches, both under LLMC_CACHE/build (default ~/.cache/llmc/build):

- objects: every translation unit (model.c, each kernel file, the runtime's .c files, accelerator .cpp
  files) is compiled on its own into `obj/<key>.o`, where the key hashes the unit's text, the text of the
  local headers it includes (transitively), the compiler's identity and flags and the host CPU (flags
  carry -march=native). Kernels do not depend on the model, so a new architecture compiles only its
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
from pathlib import Path

from llmc import fetch
from llmc.ir.errors import LlmcError

from . import kernels, matmul

RUNTIME_C = Path(__file__).resolve().parents[2] / "runtime" / "c"
RUNTIME_FILES = ("llmc_common.h", "llmc_gguf.h", "llmc_gguf.c", "llmc_threads.h", "llmc_threads.c",
                 "llmc_kernels.h", "llmc_weight_types.h", "llmc_runtime.h", "llmc_runtime.c")
CFLAGS = ["-O3", "-march=native", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-D_DEFAULT_SOURCE", "-fPIC",
          "-fvisibility=hidden",
          "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"]
CXXFLAGS = ["-O2", "-std=c++17", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"]
LIBRARY = "libllmc_model.so"
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


def build(out_dir: Path, hashes: dict[str, str], cc: str | None = None,
          link_flags: list[str] | None = None) -> tuple[Path, bool]:
    """Compile out_dir/src/*.c (and *.cpp, from accelerator emitters) into out_dir/LIBRARY; returns
    (path, whether the library cache served it). Objects come from the object cache where it has them."""
    cc = cc or os.environ.get("CC", "cc")
    cxx = os.environ.get("CXX", "c++")
    link_flags = list(link_flags or [])
    toolchain = _toolchain(cc, cxx)
    key = _digest("\n".join(f"{k} {v}" for k, v in hashes.items()), toolchain, *link_flags)
    cached = cache_dir() / f"{key[:24]}.so"
    target = out_dir / LIBRARY
    if cached.exists():
        shutil.copyfile(cached, target)
        return target, True
    src = out_dir / "src"
    units = sorted(src.glob("*.c")) + sorted(src.glob("*.cpp"))
    prelude = {unit: _takes_prelude(unit) for unit in units}
    objects = [_object(unit, toolchain, prelude[unit]) for unit in units]
    missing = [(unit, obj) for unit, obj in zip(units, objects) if not obj.exists()]
    missing.sort(key=lambda pair: -pair[0].stat().st_size)      # longest first: the cores finish together
    forced = ["-include", str(_prelude(cc, toolchain))] if any(prelude[u] for u, _ in missing) else []
    _run_parallel([[*_compiler(unit, cc, cxx), *(forced if prelude[unit] else []), "-I", str(src), "-c", str(unit)]
                   for unit, _ in missing], [obj for _, obj in missing])
    linker = cxx if any(u.suffix == ".cpp" for u in units) else cc
    _run_parallel([[linker, "-shared", "-pthread", *map(str, objects), "-lm", *link_flags]], [cached])
    shutil.copyfile(cached, target)
    return target, False


def _compiler(unit: Path, cc: str, cxx: str) -> list[str]:
    return [cxx, *CXXFLAGS] if unit.suffix == ".cpp" else [cc, *CFLAGS]


def _takes_prelude(unit: Path) -> bool:
    return unit.suffix == ".c" and not _FEATURE_MACRO_FIRST.search(unit.read_text())


def _prelude(cc: str, toolchain: str) -> Path:
    """The prelude header, with its precompiled form beside it when the compiler can make one."""
    folder = cache_dir() / "pch" / _digest(toolchain, PRELUDE)[:24]
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
            _run_parallel([[cc, *CFLAGS, "-x", "c-header", str(header)]], [compiled])
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
def _toolchain(cc: str, cxx: str) -> str:
    """What besides the sources decides an object: the compilers (path and version), the flags, and the
    host CPU, because -march=native compiles for it."""
    parts = [" ".join(CFLAGS), " ".join(CXXFLAGS), platform.machine()]
    for compiler in (cc, cxx):
        path = shutil.which(compiler)
        try:
            version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
        except OSError:
            version = "missing"                 # reported when it is needed, by the compile itself
        parts += [compiler, str(path), version]
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
