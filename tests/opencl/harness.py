"""Run one OpenCL kernel from Python: runtime/c/llmc_opencl.c built into a small library, called through cffi.

The tests use the same host runtime as generated models (program build and cache, buffers, launches), so
a kernel test also exercises it. `device()` is None where no OpenCL platform exists; `need_opencl` skips a
test with that reason (CI installs PoCL, so there the tests run).
"""
from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

RUNTIME = Path(__file__).resolve().parents[2] / "runtime" / "c"
_CDEF = """
typedef struct llmc_cl llmc_cl;
typedef struct _cl_program *cl_program;
typedef struct _cl_kernel *cl_kernel;
typedef struct _cl_mem *cl_mem;
llmc_cl *llmc_cl_open(char *err, size_t err_len);
void llmc_cl_close(llmc_cl *cl);
const char *llmc_cl_device_name(const llmc_cl *cl);
cl_program llmc_cl_build(llmc_cl *cl, const char *name, const char *source, int *cached, char *err, size_t err_len);
cl_kernel llmc_cl_kernel(llmc_cl *cl, cl_program program, const char *name, char *err, size_t err_len);
cl_mem llmc_cl_alloc(llmc_cl *cl, size_t bytes, const void *init, const char *what, char *err, size_t err_len);
void llmc_cl_release(cl_mem mem);
int llmc_cl_read(llmc_cl *cl, void *dst, cl_mem src, size_t offset, size_t bytes, char *err, size_t err_len);
void llmc_cl_run(llmc_cl *cl, cl_kernel k, int dims, const size_t *global, const char *args, ...);
void llmc_cl_run_local(llmc_cl *cl, cl_kernel k, int dims, const size_t *global, const size_t *local,
                       const char *args, ...);
long llmc_cl_launches(const llmc_cl *cl);
"""
_ARG_TYPES = {"m": "cl_mem", "i": "int", "l": "long", "f": "double"}


@functools.lru_cache(maxsize=1)
def _lib():
    import cffi
    src = (RUNTIME / "llmc_opencl.c").read_text() + (RUNTIME / "llmc_opencl.h").read_text()
    key = hashlib.sha256(src.encode()).hexdigest()[:16]
    so = Path(tempfile.gettempdir()) / f"llmc_opencl_test_{key}.so"
    if not so.exists():
        tmp = so.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(["cc", "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-D_DEFAULT_SOURCE", "-fPIC",
                        "-shared", "-I", str(RUNTIME), str(RUNTIME / "llmc_opencl.c"), "-o", str(tmp), "-lOpenCL"],
                       check=True, capture_output=True, text=True)
        os.replace(tmp, so)
    ffi = cffi.FFI()
    ffi.cdef(_CDEF)
    return ffi, ffi.dlopen(str(so))


class Device:
    """One OpenCL device: build programs, move numpy arrays, launch kernels."""

    def __init__(self):
        self.ffi, self.lib = _lib()
        self.err = self.ffi.new("char[]", 8192)
        handle = self.lib.llmc_cl_open(self.err, 8192)
        if handle == self.ffi.NULL:
            raise RuntimeError(self._error())
        self.cl = handle
        self.name = self.ffi.string(self.lib.llmc_cl_device_name(handle)).decode()
        self._programs = {}

    def _error(self) -> str:
        return self.ffi.string(self.err).decode(errors="replace")

    def kernel(self, source: str, name: str):
        if source not in self._programs:
            cached = self.ffi.new("int *")
            prog = self.lib.llmc_cl_build(self.cl, b"test", source.encode(), cached, self.err, 8192)
            if prog == self.ffi.NULL:
                raise RuntimeError(self._error())
            self._programs[source] = prog
        k = self.lib.llmc_cl_kernel(self.cl, self._programs[source], name.encode(), self.err, 8192)
        if k == self.ffi.NULL:
            raise RuntimeError(self._error())
        return k

    def buffer(self, array: np.ndarray | None = None, nbytes: int | None = None):
        if array is None:
            return self.lib.llmc_cl_alloc(self.cl, nbytes, self.ffi.NULL, b"test", self.err, 8192)
        array = np.ascontiguousarray(array)
        return self.lib.llmc_cl_alloc(self.cl, max(array.nbytes, 1), self.ffi.cast("void *", array.ctypes.data),
                                      b"test", self.err, 8192)

    def read(self, mem, shape, dtype=np.float32) -> np.ndarray:
        out = np.empty(shape, dtype)
        if not self.lib.llmc_cl_read(self.cl, self.ffi.cast("void *", out.ctypes.data), mem, 0, out.nbytes,
                                     self.err, 8192):
            raise RuntimeError(self._error())
        return out

    def run(self, kernel, global_size, *args, local=None) -> None:
        """args: (letter, value) pairs, letters as llmc_cl_run's ('m' a buffer or None, 'i', 'l', 'f');
        local: work-group sizes (each global size a multiple of it), else the driver chooses."""
        letters = "".join(a for a, _ in args)
        values = [self.ffi.NULL if v is None and a == "m" else self.ffi.cast(_ARG_TYPES[a], v) for a, v in args]
        sizes = self.ffi.new("size_t[]", list(global_size))
        if local is None:
            self.lib.llmc_cl_run(self.cl, kernel, len(global_size), sizes, letters.encode(), *values)
        else:
            self.lib.llmc_cl_run_local(self.cl, kernel, len(global_size), sizes, self.ffi.new("size_t[]", list(local)),
                                       letters.encode(), *values)


@functools.lru_cache(maxsize=1)
def device() -> Device | None:
    try:
        return Device()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        device.reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None


def need_opencl() -> Device:
    """The device, or skip the test saying why there is none."""
    dev = device()
    if dev is None:
        pytest.skip(f"no OpenCL platform: {device.reason}")
    return dev
