"""Build and run generated AscendC kernels on the CPU emulator (kernel_operator.h next to this file).

``compile_kernel(kernel)`` writes the kernel source and its host wrapper, compiles them with
``g++ -O2 -D__NPU_ARCH__=<arch>`` into a shared library cached by source hash, and loads it through
cffi. ``run(kernel, *inputs)`` pads the inputs to their GM layout, launches every block and returns
the outputs trimmed to their logical shapes. A rule the emulator enforces raises
:class:`AscendCRuleError` carrying the rule name; the process survives.

The launcher reads a kernel through plain attributes (name, source, host_source, launch_symbol, args,
tiling_bytes(), block_dim, npu_arch) -- the same fields a manifest carries -- so it imports nothing
from the compiler or codegen.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cffi import FFI

EMU_DIR = Path(__file__).resolve().parent
_ERR_LEN = 1024
_RULE = re.compile(r"rule ([a-z0-9-]+):")


class AscendCError(RuntimeError):
    """Base of the AscendC runtime errors."""


class AscendCCompileError(AscendCError):
    """g++ rejected a kernel; `output` holds the compiler's messages (static_assert rules included)."""

    def __init__(self, message: str, output: str):
        super().__init__(message)
        self.output = output
        found = _RULE.search(output)
        self.rule = found.group(1) if found else None


class AscendCRuleError(AscendCError):
    """The emulator stopped a kernel: `rule` is the rule name, the message the emulator's line."""

    def __init__(self, message: str):
        super().__init__(message)
        found = _RULE.search(message)
        self.rule = found.group(1) if found else None


@dataclass
class CompiledKernel:
    path: Path
    warnings: str
    ffi: FFI
    lib: object
    symbol: str

    def call(self, buffers: list[np.ndarray], tiling: bytes, block_dim: int) -> None:
        """Run on `buffers` (contiguous; outputs written back in place). Each is staged in a block as
        large as aclrtMalloc would give it on a board (its size rounded up to 32 bytes, plus 32), as the
        emulator's GM bounds assume (emu_device.h AclAllocBytes)."""
        ffi = self.ffi
        tiling_buf = np.frombuffer(bytearray(tiling), dtype=np.uint8)
        staged, argv = [], []
        for buf in [*buffers, tiling_buf]:
            block = np.zeros(acl_alloc_bytes(buf.nbytes), dtype=np.uint8)
            block[:buf.nbytes] = np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
            staged.append(block)
            argv += [ffi.cast("uint8_t *", ffi.from_buffer(block, require_writable=True)), buf.nbytes]
        err = ffi.new(f"char[{_ERR_LEN}]")
        rc = getattr(self.lib, self.symbol)(*argv, block_dim, err, _ERR_LEN)
        for buf, block in zip(buffers, staged):
            buf.reshape(-1).view(np.uint8)[:] = block[:buf.nbytes]
        if rc != 0:
            raise AscendCRuleError(ffi.string(err).decode(errors="replace"))


def acl_alloc_bytes(size: int) -> int:
    """Bytes aclrtMalloc hands out for `size` (CANN: rounded up to 32, plus 32)."""
    return (size + 31) // 32 * 32 + 32


_CACHE: dict[str, CompiledKernel] = {}
_LOCK = threading.Lock()


def cache_dir() -> Path:
    """Where built libraries live: $LLMC_ASCENDC_CACHE, else <tmp>/llmc-ascendc-<uid>."""
    path = Path(
        os.environ.get("LLMC_ASCENDC_CACHE") or Path(tempfile.gettempdir()) / f"llmc-ascendc-{os.getuid()}"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cdef(kernel) -> str:
    params = "".join(f"uint8_t *{a.name}, size_t {a.name}_bytes, " for a in kernel.args)
    return (
        f"int {kernel.launch_symbol}({params}uint8_t *tiling, size_t tiling_bytes, "
        "uint32_t block_dim, char *err, size_t err_len);"
    )


def compile_sources(
    name: str, source: str, host_source: str, npu_arch: int, cdef: str, symbol: str
) -> CompiledKernel:
    """Compile <name>.cpp + its host wrapper for one chip, reusing a cached build of the same text."""
    flags = ["-std=c++17", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", f"-D__NPU_ARCH__={npu_arch}"]
    header_text = "".join(p.read_text() for p in sorted(EMU_DIR.glob("*.h")))
    digest = hashlib.sha256("\0".join([source, host_source, " ".join(flags), header_text]).encode())
    key = f"{name}-{npu_arch}-{digest.hexdigest()[:16]}"
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    build = cache_dir() / key
    lib_path = build / f"lib{name}.so"
    log_path = build / "build.log"
    if not lib_path.exists():
        build.mkdir(parents=True, exist_ok=True)
        (build / f"{name}.cpp").write_text(source)
        host_path = build / f"{name}_host.cpp"
        host_path.write_text(host_source)
        tmp = build / f".lib{name}.{os.getpid()}.{threading.get_ident()}.so"
        cmd = ["g++", *flags, f"-I{EMU_DIR}", f"-I{build}", str(host_path), "-o", str(tmp)]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            raise AscendCCompileError(
                f"g++ failed for {name} (__NPU_ARCH__ {npu_arch}):\n{proc.stderr}", proc.stderr
            )
        log_path.write_text(proc.stderr)
        os.replace(tmp, lib_path)
    ffi = FFI()
    ffi.cdef(cdef)
    compiled = CompiledKernel(
        lib_path, log_path.read_text() if log_path.exists() else "", ffi, ffi.dlopen(str(lib_path)), symbol
    )
    with _LOCK:
        _CACHE[key] = compiled
    return compiled


def compile_kernel(kernel) -> CompiledKernel:
    """Compile a generated kernel (an AscendKernel or anything with the same attributes)."""
    return compile_sources(
        kernel.name, kernel.source, kernel.host_source, kernel.npu_arch, _cdef(kernel), kernel.launch_symbol
    )


def _to_device(arg, value) -> np.ndarray:
    arr = np.asarray(value, dtype=arg.dtype)
    if arr.shape != tuple(arg.shape):
        raise ValueError(f"argument {arg.name}: shape {arr.shape}, kernel expects {tuple(arg.shape)}")
    if tuple(arg.device_shape) == arr.shape:
        return np.ascontiguousarray(arr).copy()
    dev = np.zeros(arg.device_shape, dtype=arg.dtype)
    dev[tuple(slice(0, n) for n in arr.shape)] = arr
    return dev


def run(kernel, *inputs) -> np.ndarray | tuple[np.ndarray, ...]:
    """Run a kernel on the emulator: inputs in argument order, outputs returned (one array or a tuple)."""
    in_args = [a for a in kernel.args if not a.output]
    if len(inputs) != len(in_args):
        raise ValueError(
            f"{kernel.name} takes {len(in_args)} inputs ({[a.name for a in in_args]}), got {len(inputs)}"
        )
    values = iter(inputs)
    buffers = []
    for arg in kernel.args:
        if arg.output:
            # NaN-filled so an element the kernel never writes cannot pass for a result
            fill = np.nan if np.dtype(arg.dtype).kind == "f" else 0
            buffers.append(np.full(arg.device_shape, fill, dtype=arg.dtype))
        else:
            buffers.append(_to_device(arg, next(values)))
    compile_kernel(kernel).call(buffers, kernel.tiling_bytes(), kernel.block_dim)
    outs = tuple(
        buf[tuple(slice(0, n) for n in arg.shape)].copy()
        for arg, buf in zip(kernel.args, buffers)
        if arg.output
    )
    return outs[0] if len(outs) == 1 else outs
