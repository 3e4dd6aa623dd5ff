"""A scalar, one-output-at-a-time transcription of ggml's x86 vec_dot kernels (ggml-cpu/arch/x86/quants.c,
the AVX2 branches: ggml_vec_dot_{q8_0,q4_0,q5_0}_q8_0, _{q4_1,q5_1}_q8_1, _q4_K_q8_K, _q6_K_q8_K) and of
the block layouts (ggml-common.h), written independently of ir/ggml_vec_dot.py to test it: plain loops
over bytes, one SIMD lane at a time, the fma rounded once through exact rationals."""
from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np

from llmc.ir import quant

f32 = np.float32


def round_f32(v: Fraction) -> np.float32:
    """The f32 nearest to an exact rational, ties to even."""
    r = f32(float(v))
    cands = [np.nextafter(r, f32(-np.inf)), r, np.nextafter(r, f32(np.inf))]
    best = min(abs(Fraction(float(c)) - v) for c in cands)
    near = [c for c in cands if abs(Fraction(float(c)) - v) == best]
    return near[0] if len(near) == 1 else [c for c in near if not int(c.view(np.uint32)) & 1][0]


def fma(a, b, c) -> np.float32:
    return round_f32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))


def hsum_float_8(acc) -> np.float32:
    res = [f32(acc[4 + i] + acc[i]) for i in range(4)]                    # hi128 + lo128
    res = [f32(res[0] + res[2]), f32(res[1] + res[3])]                   # + movehl
    return f32(res[0] + res[1])                                           # + movehdup


def f16(b: bytes, at: int) -> np.float32:
    return f32(np.frombuffer(b[at:at + 2], np.float16)[0])


def _codes_32(ggml_type: str, blk: bytes) -> tuple[list[int], np.float32, np.float32 | None]:
    """One 32-element block -> (codes as the kernel multiplies them, d, m or None)."""
    if ggml_type == "Q8_0":
        return list(np.frombuffer(blk[2:34], np.int8).astype(int)), f16(blk, 0), None
    if ggml_type in ("Q4_0", "Q4_1"):
        qs = blk[2:18] if ggml_type == "Q4_0" else blk[4:20]
        nib = [qs[j] & 15 for j in range(16)] + [qs[j] >> 4 for j in range(16)]
        if ggml_type == "Q4_0":
            return [v - 8 for v in nib], f16(blk, 0), None
        return nib, f16(blk, 0), f16(blk, 2)
    qh_at, qs_at = (2, 6) if ggml_type == "Q5_0" else (4, 8)
    qh = struct.unpack("<I", blk[qh_at:qh_at + 4])[0]
    qs = blk[qs_at:qs_at + 16]
    codes = [(qs[j] & 15) | (((qh >> j) << 4) & 0x10) for j in range(16)] + \
            [(qs[j] >> 4) | ((qh >> (j + 12)) & 0x10) for j in range(16)]
    if ggml_type == "Q5_0":
        return [v - 16 for v in codes], f16(blk, 0), None
    return codes, f16(blk, 0), f16(blk, 2)


def vec_dot_32(ggml_type: str, row: bytes, x: np.ndarray) -> np.float32:
    """One output of a 32-element-block type against the activation row x (f32)."""
    nb = len(x) // 32
    q, _, d16 = quant.q8_blocks(x.reshape(nb, 32))
    s = quant.q8_1_sums(x[None])[0]                                       # Q8_1's s, (nb,)
    size = quant.BLOCK_LAYOUT[ggml_type][1]
    acc, summs = [f32(0)] * 8, f32(0)
    for ib in range(nb):
        codes, dw, mw = _codes_32(ggml_type, row[ib * size:(ib + 1) * size])
        scale = f32(dw * d16[ib, 0])
        for lane in range(8):
            isum = sum(codes[4 * lane + k] * int(q[ib, 4 * lane + k]) for k in range(4))
            acc[lane] = fma(scale, f32(isum), acc[lane])
        if mw is not None:
            summs = fma(mw, s[ib], summs)
    out = hsum_float_8(acc)
    return f32(out + summs) if quant.VEC_DOT_TYPE[ggml_type] == "Q8_1" else out


def _scale_min_k4(j: int, sc: bytes) -> tuple[int, int]:
    """ggml's get_scale_min_k4."""
    if j < 4:
        return sc[j] & 63, sc[j + 4] & 63
    return (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4), (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4)


def vec_dot_q4_k(row: bytes, x: np.ndarray) -> np.float32:
    nb = len(x) // 256
    q8, d8 = quant.q8_k_blocks(x.reshape(nb, 256))
    acc, acc_m = [f32(0)] * 8, [f32(0)] * 4
    for i in range(nb):
        blk = row[i * 144:(i + 1) * 144]
        d = f32(d8[i, 0] * f16(blk, 0))
        dmin = f32(-d8[i, 0] * f16(blk, 2))
        sc_min = [_scale_min_k4(j, blk[4:16]) for j in range(8)]
        qs = blk[16:144]
        q4 = [0] * 256
        for c in range(4):
            for l in range(32):
                q4[64 * c + l], q4[64 * c + 32 + l] = qs[32 * c + l] & 15, qs[32 * c + l] >> 4
        y = [int(v) for v in q8[i]]
        sub = [sum(y[32 * k:32 * k + 32]) for k in range(8)]
        for m in range(4):
            prod = sc_min[2 * m][1] * sub[2 * m] + sc_min[2 * m + 1][1] * sub[2 * m + 1]
            acc_m[m] = fma(dmin, f32(prod), acc_m[m])
        for lane in range(8):
            isum = sum(sc_min[k][0] * sum(q4[32 * k + 4 * lane + e] * y[32 * k + 4 * lane + e] for e in range(4))
                       for k in range(8))
            acc[lane] = fma(d, f32(isum), acc[lane])
    m = [f32(acc_m[0] + acc_m[2]), f32(acc_m[1] + acc_m[3])]
    return f32(hsum_float_8(acc) + f32(m[0] + m[1]))


def vec_dot_q6_k(row: bytes, x: np.ndarray) -> np.float32:
    nb = len(x) // 256
    q8, d8 = quant.q8_k_blocks(x.reshape(nb, 256))
    acc = [f32(0)] * 8
    for i in range(nb):
        blk = row[i * 210:(i + 1) * 210]
        ql, qh, scales = blk[0:128], blk[128:192], np.frombuffer(blk[192:208], np.int8).astype(int)
        q6 = [0] * 256
        for half in range(2):
            n, L, H = 128 * half, ql[64 * half:64 * half + 64], qh[32 * half:32 * half + 32]
            for l in range(32):
                q6[n + l] = (L[l] & 15) | ((H[l] & 3) << 4)
                q6[n + l + 32] = (L[l + 32] & 15) | (((H[l] >> 2) & 3) << 4)
                q6[n + l + 64] = (L[l] >> 4) | (((H[l] >> 4) & 3) << 4)
                q6[n + l + 96] = (L[l + 32] >> 4) | (((H[l] >> 6) & 3) << 4)
        y = [int(v) for v in q8[i]]
        bsum = [sum(y[16 * g:16 * g + 16]) for g in range(16)]
        d = f32(d8[i, 0] * f16(blk, 208))
        for lane in range(8):
            isum = sum(scales[e // 16] * q6[e] * y[e] for e in range(256) if (e % 32) // 4 == lane)
            isum -= 32 * (bsum[2 * lane] * scales[2 * lane] + bsum[2 * lane + 1] * scales[2 * lane + 1])
            acc[lane] = fma(d, f32(isum), acc[lane])
    return hsum_float_8(acc)


def matmul(x: np.ndarray, w_raw: np.ndarray, ggml_type: str, n_out: int) -> np.ndarray:
    """(T, n_in) x (n_out rows of raw blocks) -> (T, n_out), one vec_dot per output."""
    rows = np.ascontiguousarray(w_raw).view(np.uint8).reshape(n_out, -1)
    one = {"Q4_K": vec_dot_q4_k, "Q6_K": vec_dot_q6_k}.get(ggml_type)
    out = np.empty((len(x), n_out), f32)
    for t, xt in enumerate(np.asarray(x, f32)):
        for o in range(n_out):
            row = rows[o].tobytes()
            out[t, o] = one(row, xt) if one else vec_dot_32(ggml_type, row, xt)
    return out


def vec_dot_f16(x, y) -> np.float32:
    """ggml_vec_dot_f16 on AVX-512 (vec.cpp): 4 accumulators of 16 lanes over steps of 64 (fma), reduced
    x0 += x2, x1 += x3, x0 += x1, then _mm512_reduce_add_ps (upper 8 + lower 8, upper 4 + lower 4,
    (0 + 2) + (1 + 3)); the n % 64 leftovers added in double. x, y hold f16 values."""
    n = len(x)
    full = n - n % 64
    acc = [[f32(0)] * 16 for _ in range(4)]
    for i in range(0, full, 64):
        for j in range(4):
            for lane in range(16):
                # f16 · f16 is exact in f32, so the fma is one rounded add
                acc[j][lane] = f32(acc[j][lane] + f32(x[i + 16 * j + lane] * y[i + 16 * j + lane]))
    s = [f32(f32(acc[0][k] + acc[2][k]) + f32(acc[1][k] + acc[3][k])) for k in range(16)]
    s8 = [f32(s[8 + k] + s[k]) for k in range(8)]
    s4 = [f32(s8[4 + k] + s8[k]) for k in range(4)]
    total = float(f32(f32(s4[0] + s4[2]) + f32(s4[1] + s4[3])))
    for i in range(full, n):
        total += float(x[i]) * float(y[i])
    return f32(total)
