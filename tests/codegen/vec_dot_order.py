"""ggml's x86 (AVX2) vec_dot summation order in numpy, bit for bit: the spec the C kernels of Q8_0, Q4_0,
Q5_0, Q4_K and Q6_K are held to (tests/codegen/test_c_vec_dot_order.py; docs/numerics.md, "Summation order").

Upstream: ggml-cpu/arch/x86/quants.c, ggml_vec_dot_{q8_0,q4_0,q5_0}_q8_0 and ggml_vec_dot_{q4_K,q6_K}_q8_K,
their __AVX2__ branches (llama.cpp fed one token at a time takes these for every matmul). Every sum below
is either exact in integers or named float step by float step; numpy float32 arithmetic rounds each
step as the C code does, and ``fma_f32`` rounds a·b + c once.
"""

from __future__ import annotations

import numpy as np
from llmc.ir import quant

f32 = np.float32


def fma_f32(a, b, c) -> np.ndarray:
    """fmaf(a, b, c) elementwise on float32 inputs: a·b + c rounded once to float32 (nearest, ties even).

    a·b is exact in float64 (24 + 24 bits); s = a·b + c in float64 may round, and rounding s again to
    float32 is then wrong only when s lands exactly halfway between two floats: the float64 rounding
    error of s (two-sum) says on which side the exact value lies.
    """
    a, b, c = (np.asarray(v, np.float64) for v in (a, b, c))
    with np.errstate(invalid="ignore", over="ignore"):
        p = a * b
        s = p + c
        b_virtual = s - p
        err = (p - (s - b_virtual)) + (c - b_virtual)       # exact: s + err == p + c
        r = s.astype(f32)
        r64 = r.astype(np.float64)
        toward_s = np.where(s > r64, f32(np.inf), f32(-np.inf)).astype(f32)
        other = np.nextafter(r, toward_s)
        halfway = (s != r64) & (2 * s == r64 + other.astype(np.float64))
        # s was a tie rounded toward r, but the exact sum lies beyond s, away from r: the other neighbour
        wrong_way = halfway & (err != 0) & ((err > 0) == (r64 < s))
    return np.where(wrong_way, other, r).astype(f32)


def hsum8(v: np.ndarray) -> np.ndarray:
    """ggml's hsum_float_8 over the last axis (8): ((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7))."""
    h = v[..., 0:4] + v[..., 4:8]
    return (h[..., 0] + h[..., 2]) + (h[..., 1] + h[..., 3])


def hsum4(v: np.ndarray) -> np.ndarray:
    """The movehl / movehdup sum of 4 lanes (q4_K's min accumulator): (v0+v2) + (v1+v3)."""
    return (v[..., 0] + v[..., 2]) + (v[..., 1] + v[..., 3])


def _f16_field(blocks: np.ndarray, offset: int) -> np.ndarray:
    return blocks[..., offset:offset + 2].copy().view(np.float16)[..., 0].astype(f32)


def _codes_32(raw: np.ndarray, ggml_type: str, n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Q8_0 / Q4_0 / Q5_0 rows -> signed codes (n_out, nb, 32) int64 as the dot takes them, d (n_out, nb)."""
    block_bytes = quant.BLOCK_LAYOUT[ggml_type][1]
    b = np.ascontiguousarray(raw).view(np.uint8).reshape(n_out, n_in // 32, block_bytes)
    d = _f16_field(b, 0)
    if ggml_type == "Q8_0":
        return b[..., 2:].copy().view(np.int8).astype(np.int64), d
    qs = b[..., -16:].astype(np.int64)
    nibbles = np.concatenate([qs & 15, qs >> 4], axis=-1)              # elements 0..15 low, 16..31 high
    if ggml_type == "Q4_0":
        return nibbles - 8, d
    qh = b[..., 2:6].copy().view(np.uint32)[..., 0].astype(np.int64)
    high = (qh[..., None] >> np.arange(32)) & 1                         # bit j = fifth bit of element j
    return (nibbles | (high << 4)) - 16, d


def _q4_k(raw: np.ndarray, n_out: int, n_in: int):
    """Q4_K rows -> nibbles (n_out, nb, 256), d, dmin (n_out, nb), scales, mins (n_out, nb, 8)."""
    b = np.ascontiguousarray(raw).view(np.uint8).reshape(n_out, n_in // 256, 144)
    s = b[..., 4:16].astype(np.int64)
    scales = np.concatenate([s[..., 0:4] & 63, (s[..., 8:12] & 15) | ((s[..., 0:4] >> 6) << 4)], axis=-1)
    mins = np.concatenate([s[..., 4:8] & 63, (s[..., 8:12] >> 4) | ((s[..., 4:8] >> 6) << 4)], axis=-1)
    qs = b[..., 16:].astype(np.int64).reshape(n_out, -1, 4, 32)        # chunk c: sub-blocks 2c (low), 2c+1 (high)
    q = np.stack([qs & 15, qs >> 4], axis=3).reshape(n_out, -1, 256)
    return q, _f16_field(b, 0), _f16_field(b, 2), scales, mins


def _q6_k(raw: np.ndarray, n_out: int, n_in: int):
    """Q6_K rows -> unsigned codes 0..63 (n_out, nb, 256), d (n_out, nb), scales (n_out, nb, 16)."""
    b = np.ascontiguousarray(raw).view(np.uint8).reshape(n_out, n_in // 256, 210)
    ql = b[..., 0:128].astype(np.int64).reshape(n_out, -1, 2, 64)
    qh = b[..., 128:192].astype(np.int64).reshape(n_out, -1, 2, 32)
    lo = [ql[..., 0:32] & 15, ql[..., 32:64] & 15, ql[..., 0:32] >> 4, ql[..., 32:64] >> 4]
    q = np.stack([lo[k] | (((qh >> (2 * k)) & 3) << 4) for k in range(4)], axis=3)   # (.., half, 4, 32)
    scales = b[..., 192:208].copy().view(np.int8).astype(np.int64)
    return q.reshape(n_out, -1, 256), _f16_field(b, 208), scales


def _lanes(prod: np.ndarray) -> np.ndarray:
    """Integer products (..., 32k) -> (..., 8): lane l sums elements with (e % 32) // 4 == l."""
    return prod.reshape(*prod.shape[:-1], -1, 8, 4).sum(axis=(-3, -1))


def vec_dot_matmul(raw: np.ndarray, ggml_type: str, x: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """y (T, n_out) f32: every output the ggml vec_dot of weight row and quantized activation row."""
    x = np.asarray(x, f32).reshape(-1, n_in)
    t = x.shape[0]
    if ggml_type in ("Q8_0", "Q4_0", "Q5_0"):
        qw, dw = _codes_32(raw, ggml_type, n_out, n_in)                  # (O, nb, 32), (O, nb)
        qa, _, da = quant._q8_blocks(x.reshape(t, -1, 32))               # (T, nb, 32), f16 d as f32
        lanes = np.einsum("obls,tbls->otbl", qw.reshape(n_out, -1, 8, 4), qa.reshape(t, -1, 8, 4).astype(np.int64))
        acc = np.zeros((n_out, t, 8), f32)
        for blk in range(n_in // 32):
            scale = (dw[:, blk, None] * da[None, :, blk, 0]).astype(f32)   # f16·f16: exact in f32
            acc = fma_f32(scale[..., None], lanes[:, :, blk].astype(f32), acc)
        return hsum8(acc).T.copy()
    qa, da = quant._q8_k_blocks(x.reshape(t, -1, 256))                  # (T, nb, 256), (T, nb, 1)
    qa = qa.astype(np.int64)
    da = da[..., 0]
    acc = np.zeros((n_out, t, 8), f32)
    if ggml_type == "Q4_K":
        q, d, dmin, scales, mins = _q4_k(raw, n_out, n_in)
        acc_m = np.zeros((n_out, t, 4), f32)
        for blk in range(n_in // 256):
            prod = q[:, None, blk, :] * qa[None, :, blk, :] * np.repeat(scales[:, blk], 32, axis=-1)[:, None, :]
            sub_sums = qa[:, blk].reshape(t, 8, 32).sum(-1)                                    # (T, 8)
            min_lanes = (mins[:, None, blk, :] * sub_sums[None]).reshape(n_out, t, 4, 2).sum(-1)
            d_blk = (da[None, :, blk] * d[:, blk, None]).astype(f32)
            dmin_blk = (-da[None, :, blk] * dmin[:, blk, None]).astype(f32)
            acc_m = fma_f32(dmin_blk[..., None], min_lanes.astype(f32), acc_m)
            acc = fma_f32(d_blk[..., None], _lanes(prod).astype(f32), acc)
        return (hsum8(acc) + hsum4(acc_m)).T.copy()
    if ggml_type == "Q6_K":
        q, d, scales = _q6_k(raw, n_out, n_in)
        for blk in range(n_in // 256):
            prod = q[:, None, blk, :] * qa[None, :, blk, :] * np.repeat(scales[:, blk], 16, axis=-1)[:, None, :]
            group_sums = qa[:, blk].reshape(t, 16, 16).sum(-1)                                 # (T, 16)
            offset = 32 * (scales[:, None, blk, :] * group_sums[None]).reshape(n_out, t, 8, 2).sum(-1)
            d_blk = (da[None, :, blk] * d[:, blk, None]).astype(f32)
            acc = fma_f32(d_blk[..., None], (_lanes(prod) - offset).astype(f32), acc)
        return hsum8(acc).T.copy()
    raise ValueError(f"no vec_dot order spec for {ggml_type}")
