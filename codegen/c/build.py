"""Write a C artifact's sources and build its shared library with the system C compiler.

Builds are cached by a hash of every source and the compiler flags: a second compile of the same input
copies the cached library instead of running the compiler.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from llmc.ir.errors import LlmcError

from . import kernels, matmul

RUNTIME_C = Path(__file__).resolve().parents[2] / "runtime" / "c"
RUNTIME_FILES = ("llmc_common.h", "llmc_gguf.h", "llmc_gguf.c", "llmc_threads.h", "llmc_threads.c",
                 "llmc_kernels.h", "llmc_runtime.h", "llmc_runtime.c")
CFLAGS = ["-O3", "-march=native", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-D_DEFAULT_SOURCE", "-fPIC",
          "-fvisibility=hidden",
          "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"]
CXXFLAGS = ["-O2", "-std=c++17", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"]
LIBRARY = "libllmc_model.so"


def kernel_sources() -> dict[str, str]:
    """Every kernel, for every weight type: file name -> C source."""
    out = {f"matmul_{t.lower()}.c": matmul.render_matmul(t) for t in matmul.MATMUL_TYPES}
    for name, family in kernels.KERNELS.items():
        for t in family.weight_types or (None,):
            out[f"{name}{'_' + t.lower() if t else ''}.c"] = kernels.render_kernel(name, t)
    return out


def cache_dir() -> Path:
    root = os.environ.get("LLMC_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "llmc"))
    path = Path(root) / "build"
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
    (path, whether the cache served it)."""
    cc = cc or os.environ.get("CC", "cc")
    cxx = os.environ.get("CXX", "c++")
    link_flags = list(link_flags or [])
    key = hashlib.sha256(("\n".join(f"{k} {v}" for k, v in hashes.items())
                          + " ".join([cc, cxx] + CFLAGS + CXXFLAGS + link_flags)).encode())
    cached = cache_dir() / f"{key.hexdigest()[:24]}.so"
    target = out_dir / LIBRARY
    if cached.exists():
        shutil.copyfile(cached, target)
        return target, True
    src = out_dir / "src"
    objs = []
    jobs = []
    cpp_files = sorted(src.glob("*.cpp"))
    for c_file in sorted(src.glob("*.c")) + cpp_files:
        obj = out_dir / "obj" / (c_file.name + ".o")
        obj.parent.mkdir(exist_ok=True)
        compiler = [cxx, *CXXFLAGS] if c_file.suffix == ".cpp" else [cc, *CFLAGS]
        jobs.append(subprocess.Popen([*compiler, "-I", str(src), "-c", str(c_file), "-o", str(obj)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        objs.append(obj)
        if len(jobs) >= (os.cpu_count() or 2):
            _wait(jobs.pop(0))
    for job in jobs:
        _wait(job)
    linker = cxx if cpp_files else cc
    _wait(subprocess.Popen([linker, "-shared", "-pthread", "-o", str(target), *map(str, objs), "-lm", *link_flags],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    shutil.rmtree(out_dir / "obj", ignore_errors=True)
    tmp = cached.with_suffix(".tmp")
    shutil.copyfile(target, tmp)
    os.replace(tmp, cached)
    return target, False


def _wait(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate()
    if proc.returncode != 0 or (out and "warning" in out):
        raise LlmcError(f"the C compiler failed on generated code (a bug in llmc):\n{' '.join(proc.args)}\n{out}")
