"""The x86 C matmul kernels of Q8_0, Q4_0, Q5_0, Q4_K and Q6_K sum every output in ggml's vec_dot order.

Bit equality (np.array_equal), not a tolerance: llama.cpp fed one token at a time computes each output
with ggml_vec_dot_*, and one ulp anywhere grows through a quantized model (docs/numerics.md, "Summation
order"). The spec is the reference's ir/ggml_vec_dot.py. Checked on the kernels built for this machine
(-march=native: VNNI dot products here) and for plain AVX2 (maddubs): both must give the same lanes.
Every token count below PACK_MIN_TOKENS (8) runs the same per-token chain as decode, so outputs do not
depend on the batch; from 8 tokens on, the packed prefill path has its own order and is not checked here.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import numpy as np
import pytest

from llmc.codegen.c.matmul import function_name, matmul_scratch_bytes, render_matmul
from llmc.ir import ggml_vec_dot
from llmc.ir.ggml_order import fma_f32
from tests.codegen.test_c_matmul import AVX2_FLAGS, NATIVE_FLAGS, build_matmul_library
from tests.fixtures import weights

TYPES = ("Q8_0", "Q4_0", "Q5_0", "Q4_K", "Q6_K")
# the token count from which the kernels take the packed prefill path (_matmul_frame.c.j2)
PACK_MIN_TOKENS = int(re.search(r"#define PACK_MIN_TOKENS (\d+)", render_matmul("Q8_0")).group(1))


class OrderKernels:
    """The five kernels compiled with one set of flags into a shared library, and a 2-thread pool."""

    def __init__(self, out_dir: Path, flags: tuple[str, ...]):
        self.ffi, self.lib = build_matmul_library(out_dir, flags, TYPES)
        self.pool = self.ffi.gc(self.lib.llmc_threads_create(2), self.lib.llmc_threads_destroy)

    def matmul(self, ggml_type: str, w_raw: np.ndarray, x: np.ndarray, n_out: int) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        n_tokens, n_in = x.shape
        y = np.full((n_tokens, n_out), np.nan, dtype=np.float32)
        scratch = np.zeros(matmul_scratch_bytes(ggml_type, n_in, n_tokens), dtype=np.uint8)
        w = np.ascontiguousarray(w_raw).view(np.uint8)
        ptr = self.ffi.from_buffer
        getattr(self.lib, function_name(ggml_type))(self.pool, ptr("float[]", y), ptr(w), ptr("float[]", x),
                                                     n_in, n_out, n_tokens, ptr(scratch))
        return y


@pytest.fixture(scope="module", params=[NATIVE_FLAGS, AVX2_FLAGS], ids=["native", "avx2"])
def kernels(request, tmp_path_factory) -> OrderKernels:
    return OrderKernels(tmp_path_factory.mktemp("vec_dot_order"), request.param)


def activations(rng: np.random.Generator, n_tokens: int, n_in: int, scale: float) -> np.ndarray:
    """Normal values times scale, 1 % of them 20× larger (outliers as after RMSNorm)."""
    x = rng.standard_normal((n_tokens, n_in)).astype(np.float32) * np.float32(scale)
    x[rng.random(x.shape) < 0.01] *= 20.0
    return x


# (n_in values, rows) per block size: Gemma 3 270M's widths (640, 1024, 2048) among them
SHAPES_32 = [(32, 5), (96, 17), (640, 33), (2048, 9)]
SHAPES_256 = [(256, 7), (1024, 33), (2048, 5)]
# (activation scale, f16 weight-scale bound): ordinary, tiny and large magnitudes
RANGES = [(1.0, 0.05), (1e-3, 2.0), (300.0, 1e-3)]


def mismatches(kernels: OrderKernels, ggml_type: str, n_in: int, n_out: int, n_tokens: int, seed: int,
               x_scale: float, w_scale: float) -> tuple[int, int]:
    """(outputs that differ from the spec in any bit, outputs) for one random case."""
    rng = np.random.default_rng(seed)
    w_raw = weights.random_rows(ggml_type, rng, n_out, n_in, scale=w_scale)
    x = activations(rng, n_tokens, n_in, x_scale)
    y = kernels.matmul(ggml_type, w_raw, x, n_out)
    want = ggml_vec_dot.matmul(x, w_raw, ggml_type, n_out)
    assert np.all(np.isfinite(want)), "the case overflowed: pick smaller ranges"
    return int(np.count_nonzero(y.view(np.uint32) != want.view(np.uint32))), y.size


@pytest.mark.parametrize("ggml_type", TYPES)
def test_decode_is_bit_exact(kernels: OrderKernels, ggml_type: str):
    """One token (llama.cpp's generation path): every output equal to ggml's vec_dot in every bit."""
    shapes = SHAPES_256 if ggml_type.endswith("_K") else SHAPES_32
    for i, (n_in, n_out) in enumerate(shapes):
        for j, (x_scale, w_scale) in enumerate(RANGES):
            bad, total = mismatches(kernels, ggml_type, n_in, n_out, 1, seed=100 * i + j,
                                    x_scale=x_scale, w_scale=w_scale)
            assert bad == 0, f"{ggml_type} n_in={n_in} rows={n_out} x·{x_scale} w·{w_scale}: {bad}/{total} differ"


@pytest.mark.parametrize("ggml_type", TYPES)
def test_small_batches_are_bit_exact(kernels: OrderKernels, ggml_type: str):
    """2..7 tokens (tiles of 4 and the tail): each token's outputs are its decode outputs."""
    n_in = 1024 if ggml_type.endswith("_K") else 640
    for n_tokens in range(2, PACK_MIN_TOKENS):
        bad, total = mismatches(kernels, ggml_type, n_in, 19, n_tokens, seed=n_tokens, x_scale=1.0, w_scale=0.05)
        assert bad == 0, f"{ggml_type} T={n_tokens}: {bad}/{total} differ"


class GgmlVecDot:
    """llama.cpp's own x86 kernels from the oracle's libggml-cpu: quantize_row_q8_0 / q8_K and ggml_vec_dot_*."""

    ACT = {"Q8_0": ("q8_0", 32, 34), "Q8_K": ("q8_K", 256, 292)}   # vec_dot type -> (name, block, bytes)

    def __init__(self):
        import llama_cpp

        llama_cpp.llama_backend_init()
        self.lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-cpu.so"))
        self.lib.ggml_cpu_init()

    def matmul(self, ggml_type: str, w_raw: np.ndarray, x: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
        act, block, act_bytes = self.ACT["Q8_K" if ggml_type.endswith("_K") else "Q8_0"]
        vec_dot_name = {"Q4_K": "q4_K", "Q6_K": "q6_K"}.get(ggml_type, ggml_type.lower())
        vec_dot = getattr(self.lib, f"ggml_vec_dot_{vec_dot_name}_{act}")
        quantize = getattr(self.lib, f"quantize_row_{act}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        w = np.ascontiguousarray(w_raw).view(np.uint8).reshape(n_out, -1)
        xq = np.zeros((x.shape[0], n_in // block * act_bytes), np.uint8)
        y = np.zeros((x.shape[0], n_out), np.float32)
        out = ctypes.c_float()
        for t in range(x.shape[0]):
            quantize(x[t].ctypes.data_as(ctypes.c_void_p), xq[t].ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(n_in))
            for r in range(n_out):
                vec_dot(ctypes.c_int(n_in), ctypes.byref(out), ctypes.c_size_t(0), w[r].ctypes.data_as(ctypes.c_void_p),
                        ctypes.c_size_t(0), xq[t].ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(0), ctypes.c_int(1))
                y[t, r] = out.value
        return y


@pytest.mark.parametrize("ggml_type", TYPES)
def test_decode_equals_llama_cpp(kernels: OrderKernels, ggml_type: str, oracle):
    """The kernel and the numpy spec against llama.cpp's own vec_dot on the same bytes, bit for bit."""
    ggml = GgmlVecDot()
    shapes = SHAPES_256 if ggml_type.endswith("_K") else SHAPES_32
    for i, (n_in, n_out) in enumerate(shapes):
        for j, (x_scale, w_scale) in enumerate(RANGES):
            rng = np.random.default_rng(1000 + 100 * i + j)
            w_raw = weights.random_rows(ggml_type, rng, n_out, n_in, scale=w_scale)
            x = activations(rng, 1, n_in, x_scale)
            theirs = ggml.matmul(ggml_type, w_raw, x, n_in, n_out).view(np.uint32)
            case = f"{ggml_type} n_in={n_in} rows={n_out} x·{x_scale} w·{w_scale}"
            spec = ggml_vec_dot.matmul(x, w_raw, ggml_type, n_out).view(np.uint32)
            assert np.array_equal(spec, theirs), f"spec: {case}: {np.count_nonzero(spec != theirs)} differ"
            ours = kernels.matmul(ggml_type, w_raw, x, n_out).view(np.uint32)
            assert np.array_equal(ours, theirs), f"kernel: {case}: {np.count_nonzero(ours != theirs)} differ"


def test_fma_f32_is_fmaf():
    """The spec's fused multiply-add equals the C library's fmaf, ties and cancellations included."""
    libm = ctypes.CDLL("libm.so.6")
    libm.fmaf.restype = ctypes.c_float
    libm.fmaf.argtypes = [ctypes.c_float] * 3
    rng = np.random.default_rng(0)
    a = rng.standard_normal(4000).astype(np.float32)
    b = rng.standard_normal(4000).astype(np.float32)
    c = np.concatenate([rng.standard_normal(2000), -(a[2000:].astype(np.float64) * b[2000:])]).astype(np.float32)
    # a·b = (1 + 2^-11 + 2^-24)·2^k lies halfway between two floats; a tiny c decides the side, but
    # a·b + c rounded to float64 first is the tie itself
    k = rng.integers(-20, 20, 500)
    a[:500] = np.ldexp(np.float32(1.0 + 2.0 ** -12), k).astype(np.float32)
    b[:500] = np.float32(1.0 + 2.0 ** -12)
    c[:500] = np.ldexp(rng.choice([-1.0, 1.0], 500), k - 60).astype(np.float32)
    want = np.array([libm.fmaf(float(p), float(q), float(r)) for p, q, r in zip(a, b, c)], np.float32)
    assert np.array_equal(fma_f32(a, b, c).view(np.uint32), want.view(np.uint32))
