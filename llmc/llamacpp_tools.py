"""llama.cpp's own command-line tools (llama-bench, llama-quantize, llama-server, llama-cli), built once.

They are the peer we measure against and the source of test files gguf-py cannot write (K-quants, IQ
types). They come from the same llama.cpp the oracle runs: the llama-cpp-python 0.3.36 sdist vendors it
under vendor/llama.cpp. The sdist is downloaded with pip, built with cmake (AMX off: on these VMs the CPU
advertises AMX but executing it traps), and cached outside the repository in LLMC_CACHE
(~/.cache/llmc/llama.cpp-0.3.36/bin). `python -m llmc.llamacpp_tools [TOOL ...]` builds them ahead of time.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tarfile

from .fetch import cache_dir

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
TOOLS = ("llama-bench", "llama-quantize", "llama-server", "llama-cli")
CMAKE_FLAGS = ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF",
               "-DGGML_AMX_BF16=OFF", "-DLLAMA_CURL=OFF", "-DBUILD_SHARED_LIBS=OFF",
               "-DLLAMA_BUILD_TESTS=OFF", "-DGGML_NATIVE=ON"]


class ToolUnavailable(RuntimeError):
    """A llama.cpp tool could not be built here (no cmake, no network for the sdist)."""


def _root() -> str:
    return os.path.join(cache_dir(), f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}")


def bin_dir() -> str:
    return os.path.join(_root(), "bin")


def _source_dir(quiet: bool) -> str:
    src = os.path.join(_root(), "src")
    if os.path.isfile(os.path.join(src, "CMakeLists.txt")):
        return src
    sdist_dir = os.path.join(_root(), "sdist")
    sdists = glob.glob(os.path.join(sdist_dir, "llama_cpp_python-*.tar.gz"))
    if not sdists:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", sdist_dir]
        if subprocess.run(cmd, stdout=subprocess.DEVNULL if quiet else None).returncode != 0:
            raise ToolUnavailable("pip could not download the llama-cpp-python sdist")
        sdists = glob.glob(os.path.join(sdist_dir, "llama_cpp_python-*.tar.gz"))
    with tarfile.open(sdists[0]) as tar:
        top = tar.getnames()[0].split("/")[0]
        prefix = f"{top}/vendor/llama.cpp/"
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        for m in members:
            m.name = m.name[len(prefix):]
        tmp = src + ".part"
        shutil.rmtree(tmp, ignore_errors=True)
        tar.extractall(tmp, members=[m for m in members if m.name], filter="data")
    os.replace(tmp, src)
    return src


def build(tools=TOOLS, quiet: bool = True) -> None:
    """Build the named tools into bin_dir() (a few minutes on 2 cores the first time)."""
    missing = [t for t in tools if not os.path.isfile(os.path.join(bin_dir(), t))]
    if not missing:
        return
    if shutil.which("cmake") is None:
        raise ToolUnavailable("cmake is not installed")
    src = _source_dir(quiet)
    build_dir = os.path.join(_root(), "build")
    out = subprocess.DEVNULL if quiet else None
    if subprocess.run(["cmake", "-S", src, "-B", build_dir, *CMAKE_FLAGS], stdout=out).returncode != 0:
        raise ToolUnavailable("cmake could not configure llama.cpp")
    jobs = str(os.cpu_count() or 2)
    if subprocess.run(["cmake", "--build", build_dir, "-j", jobs, "--target", *missing],
                      stdout=out).returncode != 0:
        raise ToolUnavailable(f"cmake could not build {' '.join(missing)}")
    os.makedirs(bin_dir(), exist_ok=True)
    for tool in missing:
        shutil.copy2(os.path.join(build_dir, "bin", tool), os.path.join(bin_dir(), tool))


def tool(name: str, build_if_missing: bool = True) -> str:
    """Path to a llama.cpp tool; builds it on first use unless build_if_missing is False."""
    path = os.path.join(bin_dir(), name)
    if not os.path.isfile(path):
        if not build_if_missing:
            raise ToolUnavailable(f"{name} is not built (python -m llmc.llamacpp_tools {name})")
        build((name,), quiet=False)
    return path


if __name__ == "__main__":
    build(tuple(sys.argv[1:]) or TOOLS, quiet=False)
    print(bin_dir())
