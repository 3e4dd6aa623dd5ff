"""ggml's CPU float arithmetic, operation by operation, in numpy: the f32 fma, the SIMD horizontal sums,
ggml_v_expf and ggml_vec_dot_f16 in the order the x86 (AVX2 / AVX-512) build adds.

Fed one token at a time, llama.cpp runs one summation order per kernel (docs/numerics.md §10); the
reference follows those orders so that it equals llama.cpp bit for bit, not to a tolerance.
numpy has no fma: ``fma_f32`` computes a·b + c exactly in float64 and rounds once to f32.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

import numpy as np

f32 = np.float32
_F64 = np.float64

_LOW29 = np.uint64((1 << 29) - 1)          # the f64 mantissa bits below an f32 mantissa
_HALF29 = np.uint64(1 << 28)               # ... holding exactly half an f32 ulp
_MAGNITUDE = np.uint64((1 << 63) - 1)
_F32_TINY = np.uint64((1023 - 126) << 52)  # f64 bits of 2^-126, the smallest normal f32


def _fma_f32_slow(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """round_f32(a·b + c) for f32 a, b, c (1-D): the float64 sum s = a·b + c (a·b is exact in f64) and
    its rounding error (TwoSum) decide the one case where rounding s to f32 is wrong: s exactly halfway
    between two f32 and the true sum off s towards the neighbour s was not rounded to."""
    a64, b64, c64 = (np.asarray(v, _F64) for v in (a, b, c))
    with np.errstate(invalid="ignore", over="ignore"):
        p = a64 * b64
        s = p + c64
        b_virtual = s - p
        err = (p - (s - b_virtual)) + (c64 - b_virtual)
        r = s.astype(f32)
        r64 = r.astype(_F64)
        other = np.nextafter(r, np.where(s > r64, f32(np.inf), f32(-np.inf)).astype(f32))
        halfway = (s != r64) & (2 * s == r64 + other.astype(_F64))
        wrong_way = halfway & (err != 0) & ((err > 0) == (r64 < s))
    return np.where(wrong_way, other, r).astype(f32)


def fma_f32(a, b, c) -> np.ndarray:
    """fmaf(a, b, c) elementwise (broadcasting) for f32 operands: a·b + c rounded once to f32.

    Fast path: s = a·b + c in float64 rounded to f32. That double rounding differs from one rounding
    only where s sits exactly halfway between two f32 (its 29 low mantissa bits 1000...0) or in the
    f32 subnormal range; those few elements are redone by the exact TwoSum form."""
    a, b, c = (np.asarray(v, f32) for v in (a, b, c))
    with np.errstate(invalid="ignore", over="ignore"):
        s = np.asarray(np.add(np.multiply(a, b, dtype=_F64), c))
        r = np.array(s, dtype=f32)
    bits = s.view(np.uint64)
    suspect = (bits & _LOW29) == _HALF29
    suspect |= ((bits & _MAGNITUDE) < _F32_TINY) & (s != 0)
    if suspect.any():
        shape = r.shape
        idx = np.nonzero(suspect.reshape(-1))[0]
        a_, b_, c_ = (np.broadcast_to(v, shape).reshape(-1)[idx] for v in (a, b, c))
        r.reshape(-1)[idx] = _fma_f32_slow(a_, b_, c_)
    return r


class FmaChain:
    """f32 accumulators (lanes, *shape) updated by acc = fmaf(a, b, acc) step after step, a (*shape) the
    same for every lane, b (lanes, *shape) integer-valued with |b| <= b_max (the int32 lanes of a vec_dot,
    a the block scale). Work arrays are allocated once: the quantized matmuls run millions of steps.

    s = a·b + acc in float64 rounded to f32 is fmaf's value unless s is inexact and an f32 tie. It is
    exact while the magnitudes stay within 2^52 of the finest grain met so far: a·b + acc is a multiple of
    the smallest ulp of the a's seen (b integer, acc built from such products), and that ulp is at least
    2^-24·|a|. A running bound U >= |acc| ((rows, T)-sized, cheap) proves this for most steps; other
    steps check every lane for an f32 tie (29 low mantissa bits 1000...0) and redo those by TwoSum.
    (Subnormals need no care: a multiple of 2^-149 below 2^-125 is exact in float64.)"""

    def __init__(self, lanes: int, shape: tuple[int, ...]):
        self.acc = np.zeros((lanes,) + shape, f32)
        self._old = np.zeros_like(self.acc)
        self._sum = np.empty(self.acc.shape, _F64)
        self._low = np.empty(self.acc.shape, np.uint64)
        self._tie = np.empty(self.acc.shape, np.bool_)
        self._bound = np.zeros(shape, _F64)             # >= |acc| of every lane
        self._grain = np.full(shape, np.inf)            # 2^-24 · min |a| over the steps so far (a != 0)
        self.checked_steps = 0                          # steps the bound did not cover (for tests)

    def step(self, a: np.ndarray, b: np.ndarray, b_max: float) -> None:
        """acc <- fmaf(a, b, acc): a (*shape) f32, b (lanes, *shape) f32 integers, |b| <= b_max."""
        self.acc, self._old = self._old, self.acc
        a64 = np.abs(a, dtype=_F64)
        np.minimum(self._grain, np.where(a64 > 0, a64 * 2.0 ** -24, np.inf), out=self._grain)
        self._bound += a64 * b_max                       # bounds |a·b + acc| for this step
        exact = bool(np.all(self._bound < self._grain * 2.0 ** 52))
        self._bound *= 1 + 2.0 ** -22                    # ... and |acc| after rounding to f32
        s = self._sum
        np.multiply(a, b, out=s, dtype=_F64)
        np.add(s, self._old, out=s)
        np.copyto(self.acc, s, casting="same_kind")
        if exact:
            return
        self.checked_steps += 1
        np.bitwise_and(s.view(np.uint64), _LOW29, out=self._low)
        np.equal(self._low, _HALF29, out=self._tie)
        if self._tie.any():
            # s is halfway between two f32: right if it is the exact sum, else the rounding error of
            # s (TwoSum) says which neighbour the true sum is nearer; step off the tie towards it
            idx = np.flatnonzero(self._tie)
            a_, b_ = (np.broadcast_to(v, s.shape).reshape(-1)[idx] for v in (a, b))
            p, c, st = a_.astype(_F64) * b_, self._old.reshape(-1)[idx].astype(_F64), s.reshape(-1)[idx]
            bv = st - p
            err = (p - (st - bv)) + (c - bv)
            toward = np.where(err > 0, np.inf, np.where(err < 0, -np.inf, st))
            self.acc.reshape(-1)[idx] = np.nextafter(st, toward).astype(f32)


def hsum_float_8(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x86 quants.c hsum_float_8 over an axis of length 8 (f32): hi128 + lo128, then movehl, movehdup:
    ((x4 + x0) + (x6 + x2)) + ((x5 + x1) + (x7 + x3))."""
    x = np.moveaxis(np.asarray(x, f32), axis, 0)
    h = x[4:8] + x[0:4]
    return (h[0] + h[2]) + (h[1] + h[3])


def reduce_add_16(x: np.ndarray) -> np.ndarray:
    """_mm512_reduce_add_ps over the last axis (16 f32) as GCC expands it: upper 8 + lower 8, upper 4 +
    lower 4, then (0 + 2) + (1 + 3)."""
    x8 = x[..., 8:16] + x[..., 0:8]
    x4 = x8[..., 4:8] + x8[..., 0:4]
    return (x4[..., 0] + x4[..., 2]) + (x4[..., 1] + x4[..., 3])


def vec_dot_f16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ a·b over the last axis (broadcasting the others) as ggml_vec_dot_f16 sums on AVX-512 (vec.cpp,
    GGML_F16_STEP 64, 16 lanes): element i < n - n % 64 goes to accumulator (i % 64) / 16, lane i % 16, by
    fma; then (s0 + s2) + (s1 + s3) lane-wise and reduce_add_16; the n % 64 leftovers are added to that
    in double one by one, and the result rounded to f32. a and b hold f16 values (as f32), so each
    product is exact and each fma a rounded f32 add."""
    a, b = np.asarray(a, f32), np.asarray(b, f32)
    n = a.shape[-1]
    full = n - n % 64
    acc = None
    for i in range(0, full, 64):
        prod = a[..., i:i + 64] * b[..., i:i + 64]
        acc = prod if acc is None else acc + prod
    if acc is None:
        total = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), _F64)
    else:
        acc = acc.reshape(acc.shape[:-1] + (4, 16))
        total = reduce_add_16((acc[..., 0, :] + acc[..., 2, :]) + (acc[..., 1, :] + acc[..., 3, :])).astype(_F64)
    for i in range(full, n):
        total = total + a[..., i].astype(_F64) * b[..., i]
    return total.astype(f32)


_EXP_SHIFT, _LOG2E, _LN2_HI, _LN2_LO = (f32(float.fromhex(h)) for h in
                                         ("0x1.8p23", "0x1.715476p+0", "0x1.62e4p-1", "0x1.7f7d1cp-20"))
_EXP_POLY = [f32(float.fromhex(h)) for h in
             ("0x1.0e4020p-7", "0x1.573e2ep-5", "0x1.555e66p-3", "0x1.fffdb6p-2", "0x1.ffffecp-1")]


def expf(x: np.ndarray) -> np.ndarray:
    """ggml_v_expf (vec.h, the AVX-512 form) elementwise on f32: n = round(x·log2 e), a degree-5
    polynomial of the reduced argument by fmas, scaled by 2^n in one rounding (_mm512_scalef_ps, as
    np.ldexp on f32); 0 / inf once |n| > 192."""
    x = np.asarray(x, f32)
    z = fma_f32(x, _LOG2E, _EXP_SHIFT)
    n = (z - _EXP_SHIFT).astype(f32)
    with np.errstate(invalid="ignore", over="ignore"):
        b = fma_f32(-n, _LN2_LO, fma_f32(-n, _LN2_HI, x))
        u = (b * b).astype(f32)
        c5, c4, c3, c2, c1 = _EXP_POLY
        j = fma_f32(fma_f32(fma_f32(c5, b, c4), u, fma_f32(c3, b, c2)), u, fma_f32(c1, b, f32(1.0)))
        huge = np.abs(n) > 192
        scaled = np.ldexp(j, np.where(huge, 0, n).astype(np.int32)).astype(f32)
    return np.where(huge, np.where(n <= 0, f32(0.0), f32(np.inf)), scaled).astype(f32)


@functools.lru_cache(maxsize=None)
def _libm():
    path = ctypes.util.find_library("m")
    if path is None:
        raise RuntimeError("the C math library (libm) was not found: the reference takes cosf, sinf, tanhf, "
                           "expf and powf from it, as ggml does")
    lib = ctypes.CDLL(path)
    for name in ("cosf", "sinf", "expf", "tanhf"):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    lib.powf.restype, lib.powf.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]
    return lib


def libm_powf(x: float, y: float) -> np.float32:
    """The C library's powf of two f32 (ggml's RoPE: theta_scale = powf(base, -2.0f/n_dims); the double
    pow rounded to f32 is an ulp off for some head sizes, e.g. 96)."""
    return f32(_libm().powf(float(f32(x)), float(f32(y))))


def libm_expf(x: float) -> np.float32:
    """The C library's expf of one f32 (ggml's scalar paths call it, e.g. for a softmax sink)."""
    return f32(_libm().expf(float(f32(x))))


def _libm_map(name: str, x: np.ndarray) -> np.ndarray:
    """The C library's f32 function on each distinct value of x (ggml's RoPE calls cosf/sinf, which are
    not correctly rounded: float64 cos rounded to f32 differs on ~1 % of arguments)."""
    fn = getattr(_libm(), name)
    x = np.asarray(x, f32)
    values, inverse = np.unique(x, return_inverse=True)
    out = np.fromiter((fn(float(v)) for v in values), f32, len(values))
    return out[inverse].reshape(x.shape)


def cosf(x: np.ndarray) -> np.ndarray:
    return _libm_map("cosf", x)


def sinf(x: np.ndarray) -> np.ndarray:
    return _libm_map("sinf", x)


def tanhf(x: np.ndarray) -> np.ndarray:
    """ggml_vec_tanh_f32 calls the C library's tanhf (attention's logit cap in the non-flash path)."""
    return _libm_map("tanhf", x)
