"""What llama.cpp's CPU backend computes for one query, transcribed loop by loop into numpy: the oracle the C
attention, rope and GELU kernels are compared with bit for bit (np.array_equal).

Sources (llama.cpp 0.3.36, ggml/src/ggml-cpu, the AVX-512 build):
- vec.cpp ggml_vec_dot_f16: 4 accumulators of 16 lanes over steps of 64 elements, reduced
  (a0 + a2) + (a1 + a3) and then as GCC expands _mm512_reduce_add_ps; elements past the last whole step
  added in double;
- vec.h ggml_v_expf and vec.cpp ggml_vec_soft_max_f32: exp over 16-value chunks, chunk sums in double;
- ops.cpp ggml_compute_forward_soft_max_f32: scale, mask, max (with the sink), sum += expf(sink - max),
  p = e * (float)(1 / sum); the probabilities enter P·V as f16 (ggml's mul_mat converts src1);
- ops.cpp rope_yarn / rotate_pairs: cosf, sinf of theta (theta_{i+1} = theta_i * powf(base, -2/n_dims)),
  out0 = x0 cos - x1 sin, out1 = x0 sin + x1 cos, which GCC contracts into fmaf(x0, cos, -(x1 sin)) and
  fmaf(x0, sin, x1 cos);
- vec.h ggml_gelu_f32: 0.5 x (1 + tanhf(sqrt(2/pi) x (1 + 0.044715 x x))), the inner term contracted to
  fmaf(0.044715 x, x, 1), tabulated for every f16 input.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

# an f32 fma in numpy is a numerical fact, not an order: the reference's, tested against exact
# rationals and libm fmaf in tests/ir/test_ggml_order.py
from llmc.ir.ggml_order import fma_f32

f32, f64 = np.float32, np.float64


def reduce_16(x: np.ndarray) -> np.ndarray:
    """Sum over the last axis (16) as GCC's _mm512_reduce_add_ps: 8 + 8, 4 + 4, (0 + 2) + (1 + 3)."""
    x8 = x[..., 8:16] + x[..., 0:8]
    x4 = x8[..., 4:8] + x8[..., 0:4]
    return (x4[..., 0] + x4[..., 2]) + (x4[..., 1] + x4[..., 3])


def dot_f16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ a·b over the last axis, both holding f16 values (their products are exact in f32, so the fma of
    the vector loop is a multiply and one rounding add), in ggml_vec_dot_f16's order."""
    a, b = np.broadcast_arrays(np.asarray(a, f32), np.asarray(b, f32))
    n = a.shape[-1]
    whole = n - n % 64
    acc = np.zeros(a.shape[:-1] + (4, 16), f32)
    for i in range(0, whole, 64):
        acc = acc + (a[..., i:i + 64] * b[..., i:i + 64]).reshape(acc.shape)
    total = reduce_16((acc[..., 0, :] + acc[..., 2, :]) + (acc[..., 1, :] + acc[..., 3, :])).astype(f64)
    for i in range(whole, n):
        total = total + (a[..., i] * b[..., i]).astype(f64)
    return total.astype(f32)


_EXP = {k: f32(float.fromhex(v)) for k, v in dict(
    shift="0x1.8p23", log2e="0x1.715476p+0", ln2_hi="0x1.62e4p-1", ln2_lo="0x1.7f7d1cp-20", c5="0x1.0e4020p-7",
    c4="0x1.573e2ep-5", c3="0x1.555e66p-3", c2="0x1.fffdb6p-2", c1="0x1.ffffecp-1").items()}


def expf_ggml(x) -> np.ndarray:
    """ggml_v_expf, one lane per value."""
    k = _EXP
    x = np.asarray(x, f32)
    n = (fma_f32(x, k["log2e"], k["shift"]) - k["shift"]).astype(f32)
    with np.errstate(invalid="ignore", over="ignore"):
        b = fma_f32(-n, k["ln2_lo"], fma_f32(-n, k["ln2_hi"], x))
        u = (b * b).astype(f32)
        j = fma_f32(fma_f32(fma_f32(k["c5"], b, k["c4"]), u, fma_f32(k["c3"], b, k["c2"])), u,
                    fma_f32(k["c1"], b, f32(1)))
        huge = np.abs(n) > 192
        scaled = np.ldexp(j, np.where(huge, 0, n).astype(np.int32)).astype(f32)
    return np.where(huge, np.where(n <= 0, f32(0), f32(np.inf)), scaled).astype(f32)


_LIBM = ctypes.CDLL(ctypes.util.find_library("m"))


def libm_f32(name: str, x) -> np.ndarray:
    """The C library's one-argument float function `name` (cosf, sinf, tanhf, expf) on every value of x."""
    fn = getattr(_LIBM, name)
    fn.restype = ctypes.c_float
    x = np.asarray(x, f32)
    fn.argtypes = [ctypes.c_float]
    return np.array([fn(float(v)) for v in x.reshape(-1)], f32).reshape(x.shape)


def powf(base: float, e: float) -> f32:
    """The C library's powf of two f32 (ggml's rope_f32: theta_scale = powf(freq_base, -2.0f/n_dims))."""
    _LIBM.powf.restype = ctypes.c_float
    _LIBM.powf.argtypes = [ctypes.c_float, ctypes.c_float]
    return f32(_LIBM.powf(float(f32(base)), float(f32(e))))


def attention(q, k_cache, v_cache, q_pos, scale, window, sinks, logit_cap=0.0) -> np.ndarray:
    """reference.attention's arguments; every query row in the one-query order. Returns (T, Hq * D)."""
    T, n_head, d = q.shape
    n_head_kv = k_cache.shape[1]
    group = n_head // n_head_kv
    qh = q.astype(np.float16).astype(f32)
    out = np.empty((T, n_head, d), f32)
    for t in range(T):
        n_kv = int(q_pos[t]) + 1
        n_row = -(-n_kv // 64) * 64                         # zero-probability keys up to a whole step of P·V
        j = np.arange(n_row)
        visible = j < n_kv
        if window > 0:
            visible &= q_pos[t] - j < window
        k = np.zeros((n_row, n_head_kv, d), f32)
        v = np.zeros((n_row, n_head_kv, d), f32)
        k[:n_kv], v[:n_kv] = k_cache[:n_kv], v_cache[:n_kv]
        for h in range(n_head):
            s = dot_f16(qh[t, h], k[:, h // group])
            if logit_cap > 0:
                s = (f32(logit_cap) * libm_f32("tanhf", (s * (f32(scale) / f32(logit_cap))).astype(f32))).astype(f32)
            else:
                s = (s * f32(scale)).astype(f32)
            s = np.where(visible, s, f32(-np.inf)).astype(f32)
            mx = s[visible].max()
            if sinks is not None:
                mx = max(mx, f32(sinks[h]))
            e = expf_ggml(s - mx)
            total = 0.0                                     # chunk by chunk, in order
            for c in reduce_16(e.reshape(-1, 16)).astype(f64):
                total += c
            if sinks is not None:
                total += float(libm_f32("expf", f32(sinks[h]) - mx))
            p = (e * f32(1.0 / total)).astype(np.float16).astype(f32)
            out[t, h] = dot_f16(p, v[:, h // group].T)
    return out.reshape(T, n_head * d)


def rope(x, positions, mode, n_dims, base, freq_factors=None) -> np.ndarray:
    """ggml's rope without YaRN (freq_scale 1, ext_factor 0, attn_factor 1): x (T, heads, head_dim)."""
    half = n_dims // 2
    theta_scale = powf(base, f32(-2.0) / f32(n_dims))
    theta = np.empty((len(positions), half), f32)
    theta[:, 0] = np.asarray(positions).astype(f32)
    for i in range(1, half):
        theta[:, i] = theta[:, i - 1] * theta_scale
    if freq_factors is not None:
        theta = (theta / np.asarray(freq_factors, f32)).astype(f32)
    c, s = libm_f32("cosf", theta)[:, None, :], libm_f32("sinf", theta)[:, None, :]
    x = np.asarray(x, f32)
    out = x.copy()
    if mode == "norm":
        x0, x1 = x[..., 0:n_dims:2], x[..., 1:n_dims:2]
        out[..., 0:n_dims:2] = fma_f32(x0, c, -(x1 * s))
        out[..., 1:n_dims:2] = fma_f32(x0, s, x1 * c)
    else:
        x0, x1 = x[..., :half], x[..., half:n_dims]
        out[..., :half] = fma_f32(x0, c, -(x1 * s))
        out[..., half:n_dims] = fma_f32(x0, s, x1 * c)
    return out


def gelu_table() -> np.ndarray:
    """ggml_table_gelu_f16 (ggml_cpu_init) as f32: GELU of every f16 value, rounded to f16."""
    x = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(f32)
    with np.errstate(invalid="ignore", over="ignore"):
        inner = fma_f32((f32(0.044715) * x).astype(f32), x, f32(1))
        t = libm_f32("tanhf", (f32(0.79788456080286535587989211986876) * x * inner).astype(f32))
        g = (f32(0.5) * x * (f32(1) + t)).astype(f32)
    return g.astype(np.float16).astype(f32)
