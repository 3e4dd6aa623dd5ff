"""Quantized matmuls in the order of ggml's x86 vec_dot kernels (ggml-cpu/arch/x86/quants.c, AVX2
branch, which the AVX-512 build runs), computed from the weight's raw blocks.

Every such kernel splits a row into blocks and keeps 8 f32 lanes: lane l of a block is an exact
integer (the products of 4 weight codes with 4 activation codes, for K-quants weighted by the
sub-block scales); acc_l = fma(d_block, (float)lane_l, acc_l) block after block; the row's value is
hsum_float_8(acc) (+ the min term of Q4_1/Q5_1/Q4_K). The integer lanes come exactly from np.matmul
(BLAS) on (rows, K) slices; the fma chain is exact (ggml_order.FmaChain). docs/numerics.md §10.

    type   activations  lane l of a block                         block scale d
    Q8_0   Q8_0         Σ q_w·q_x, elements 4l..4l+3              f16 d_w · f16 d_x
    Q4_0   Q8_0         same, q_w = nibble - 8                    same
    Q5_0   Q8_0         same, q_w = 5-bit code - 16               same
    Q4_1   Q8_1         same, q_w = nibble (unsigned)             same; + Σ_blocks m_w · s_x in f32
    Q5_1   Q8_1         same, q_w = 5-bit code (unsigned)         same; + Σ_blocks m_w · s_x in f32
    Q4_K   Q8_K         Σ_k sc_k Σ q·q_x, elements 32k+4l..+3     (float)(d_x · f16 d_w); min lanes below
    Q6_K   Q8_K         Σ_e sc·q6u·q_x over (e%32)/4 == l         (float)(d_x · f16 d_w)
                        - 32 (bsum_2l sc_2l + bsum_2l+1 sc_2l+1)

Q4_K's mins: 4 lanes i = m_2i S_2i + m_2i+1 S_2i+1 (S_k = Σ q_x over sub-block k), accm_i = fma(dmin,
lane, accm_i) with dmin = (float)(-d_x · f16 dmin_w), added as (m0 + m2) + (m1 + m3) after hsum_float_8.
"""
from __future__ import annotations

import numpy as np

from . import quant
from .ggml_order import FmaChain, hsum_float_8

f32 = np.float32
_F64 = np.float64

ORDERED_TYPES = ("Q8_0", "Q4_0", "Q5_0", "Q4_1", "Q5_1", "Q4_K", "Q6_K")

# Rows are taken in chunks of about _LANE_PRODUCTS / (T · K) (K = elements per lane: 4, or 32 for
# K-quants), which keeps (a) a step's arrays (8 lanes × rows × T, float64) within a core's L2 and (b)
# every np.matmul below OpenBLAS's threading threshold (M·N·K < 65536·4, interface/gemm.c): threads
# on products this thin cost more than they give, several times more on a loaded machine.
_LANE_PRODUCTS = 1 << 16


def _f16(raw: np.ndarray) -> np.ndarray:
    """(..., 2) bytes -> (...) f32 of the f16 they hold."""
    return np.ascontiguousarray(raw).view(np.float16)[..., 0].astype(f32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """(..., 16) bytes -> (..., 32) codes: element j < 16 the low nibble of qs[j], 16 + j its high one."""
    return np.concatenate([qs & 15, qs >> 4], axis=-1).astype(np.int32)


def _fifth_bits(qh: np.ndarray) -> np.ndarray:
    """(..., 4) bytes -> (..., 32): bit e of the little-endian u32 is element e's fifth bit."""
    bits = np.unpackbits(np.ascontiguousarray(qh), axis=-1, bitorder="little")
    return bits.astype(np.int32) << 4


_MAX_CODE = {"Q8_0": 128, "Q4_0": 8, "Q5_0": 16, "Q4_1": 15, "Q5_1": 31}     # max |code| of a weight


def _small_block_codes(blk: np.ndarray, ggml_type: str):
    """(rows, nb, bytes) blocks of a 32-element type -> codes (rows, nb, 32) ints, d (rows, nb) f32,
    m (rows, nb) f32 or None."""
    if ggml_type == "Q8_0":
        return blk[..., 2:].view(np.int8), _f16(blk[..., 0:2]), None
    if ggml_type == "Q4_0":
        return _nibbles(blk[..., 2:18]) - 8, _f16(blk[..., 0:2]), None
    if ggml_type == "Q5_0":
        return (_nibbles(blk[..., 6:22]) | _fifth_bits(blk[..., 2:6])) - 16, _f16(blk[..., 0:2]), None
    if ggml_type == "Q4_1":
        return _nibbles(blk[..., 4:20]), _f16(blk[..., 0:2]), _f16(blk[..., 2:4])
    if ggml_type == "Q5_1":
        return _nibbles(blk[..., 8:24]) | _fifth_bits(blk[..., 4:8]), _f16(blk[..., 0:2]), _f16(blk[..., 2:4])
    raise ValueError(ggml_type)


def _q4_k_codes(blk: np.ndarray):
    """(rows, nb, 144) -> q (rows, nb, 256) 0..15, d, dmin (rows, nb), scales, mins (rows, nb, 8)."""
    d, dmin = _f16(blk[..., 0:2]), _f16(blk[..., 2:4])
    sc = blk[..., 4:16].astype(np.int32)
    scales = np.concatenate([sc[..., 0:4] & 63, (sc[..., 8:12] & 15) | ((sc[..., 0:4] >> 6) << 4)], -1)
    mins = np.concatenate([sc[..., 4:8] & 63, (sc[..., 8:12] >> 4) | ((sc[..., 4:8] >> 6) << 4)], -1)
    qs = blk[..., 16:144].reshape(blk.shape[:-1] + (4, 32)).astype(np.int32)
    q = np.stack([qs & 15, qs >> 4], axis=-2)                   # chunk c: sub-blocks 2c (low), 2c+1 (high)
    return q.reshape(blk.shape[:-1] + (256,)), d, dmin, scales, mins


def _q6_k_codes(blk: np.ndarray):
    """(rows, nb, 210) -> q (rows, nb, 256) unsigned 0..63, scales (rows, nb, 16) int, d (rows, nb)."""
    ql = blk[..., 0:128].reshape(blk.shape[:-1] + (2, 2, 32)).astype(np.int32)     # half, L[0:32]/L[32:64]
    qh = blk[..., 128:192].reshape(blk.shape[:-1] + (2, 1, 32)).astype(np.int32)
    low = np.concatenate([ql & 15, ql >> 4], axis=-2)                              # (.., 2, 4, 32)
    shifts = np.arange(0, 8, 2).reshape(4, 1)
    q = low | (((qh >> shifts) & 3) << 4)
    return q.reshape(blk.shape[:-1] + (256,)), blk[..., 192:208].view(np.int8).astype(np.int32), _f16(blk[..., 208:210])


def _lanes_of_32(codes: np.ndarray, dtype=f32) -> np.ndarray:
    """(rows or T, nb, 32) -> (nb, 8, rows or T, 4): lane l holds elements 4l..4l+3 of each block."""
    n, nb, _ = codes.shape
    return codes.astype(dtype).reshape(n, nb, 8, 4).transpose(1, 2, 0, 3)     # a view: BLAS takes the strides


def _lanes_of_256(codes: np.ndarray, dtype=f32) -> np.ndarray:
    """(rows or T, nb, 256) -> (nb, 8, rows or T, 32): lane l holds elements 32i + 4l .. 32i + 4l + 3."""
    n, nb, _ = codes.shape
    return codes.reshape(n, nb, 8, 8, 4).transpose(1, 3, 0, 2, 4).reshape(nb, 8, n, 32).astype(dtype)


# The integer lanes come from np.matmul in f32 where every partial sum stays below 2^24 (so any order is
# exact): 32-element types (|lane| <= 4·128·127) and Q4_K (|lane| <= 32·63·15·127); Q6_K's can reach
# 32·128·63·127 > 2^24, so it sums in float64 and rounds the int lane to f32 as _mm256_cvtepi32_ps does.

def _chunk_small(blk, ggml_type, xq, xd, xs):
    codes, dw, mw = _small_block_codes(blk, ggml_type)
    rows, nb = dw.shape
    T = xq.shape[3]
    w_lanes = _lanes_of_32(codes)                                   # (nb, 8, rows, 4)
    lane_max = 4 * 128 * _MAX_CODE[ggml_type]                       # |q_x| <= 128
    acc = FmaChain(8, (rows, T))
    summs = np.zeros((rows, T), f32)
    for b in range(nb):
        scale = np.multiply.outer(dw[:, b], xd[:, b])               # f16 · f16: exact in f32
        acc.step(scale, np.matmul(w_lanes[b], xq[b]), lane_max)     # lanes (8, rows, T)
        if mw is not None:                                          # f16 · f16 exact, added in f32
            summs += np.multiply.outer(mw[:, b], xs[:, b])
    out = hsum_float_8(acc.acc, axis=0)
    return out + summs if mw is not None else out


def _chunk_q4_k(blk, xq, xd, xsum):
    q, dw, dmin, scales, mins = _q4_k_codes(blk)
    rows, nb = dw.shape
    w_lanes = _lanes_of_256(q * np.repeat(scales, 32, axis=-1))     # sc_k · q, k = element / 32
    w_mins = mins.reshape(rows, nb, 4, 2).transpose(1, 2, 0, 3).astype(f32)   # (nb, 4, rows, 2)
    T = xq.shape[3]
    acc, acc_m = FmaChain(8, (rows, T)), FmaChain(4, (rows, T))
    for b in range(nb):
        d = np.multiply.outer(dw[:, b], xd[:, b])                   # (float)(d_x · d_w), rounded
        dm = np.multiply.outer(dmin[:, b], -xd[:, b])               # (float)(-d_x · dmin_w)
        acc_m.step(dm, np.matmul(w_mins[b], xsum[b]), 2 * 63 * 32 * 128)
        acc.step(d, np.matmul(w_lanes[b], xq[b]), 32 * 63 * 15 * 128)
    m2 = acc_m.acc[0:2] + acc_m.acc[2:4]
    return hsum_float_8(acc.acc, axis=0) + (m2[0] + m2[1])


def _chunk_q6_k(blk, xq, xd, xbsum):
    q, scales, dw = _q6_k_codes(blk)
    rows, nb = dw.shape
    w_lanes = _lanes_of_256(q * np.repeat(scales, 16, axis=-1), _F64)   # (nb, 8, rows, 32)
    # the -32 offset per lane: -32 (bsum_2l sc_2l + bsum_2l+1 sc_2l+1), as two more lane elements
    w_off = (-32 * scales).reshape(rows, nb, 8, 2).transpose(1, 2, 0, 3).astype(_F64)
    w_lanes = np.concatenate([w_lanes, w_off], axis=-1)            # (nb, 8, rows, 34)
    acc = FmaChain(8, (rows, xq.shape[3]))
    for b in range(nb):
        d = np.multiply.outer(dw[:, b], xd[:, b])
        acc.step(d, np.matmul(w_lanes[b], xq[b]).astype(f32), 32 * 128 * 63 * 128 + 2 * 32 * 128 * 16 * 128)
    return hsum_float_8(acc.acc, axis=0)


def _activations(x: np.ndarray, ggml_type: str):
    """Activation operands, shaped for np.matmul against a chunk's weight lanes (nb, L, rows, K):
    codes (nb, L, K, T), block scales (T, nb), and the extra term's operand."""
    T, n_in = x.shape
    if ggml_type in ("Q4_K", "Q6_K"):
        q, d = quant.q8_k_blocks(x.reshape(T, n_in // 256, 256))
        if ggml_type == "Q4_K":
            lanes = _lanes_of_256(q).transpose(0, 1, 3, 2)          # (nb, 8, 32, T)
            sub = q.reshape(T, -1, 4, 2, 32).sum(-1).transpose(1, 2, 3, 0).astype(f32)     # (nb, 4, 2, T)
            return lanes, d[..., 0], sub
        lanes = _lanes_of_256(q, _F64).transpose(0, 1, 3, 2)
        bsum = q.reshape(T, -1, 8, 2, 16).sum(-1).transpose(1, 2, 3, 0).astype(_F64)      # (nb, 8, 2, T)
        return np.concatenate([lanes, bsum], axis=2), d[..., 0], None
    q, _, d16 = quant.q8_blocks(x.reshape(T, n_in // 32, 32))
    lanes = _lanes_of_32(q).transpose(0, 1, 3, 2)                  # (nb, 8, 4, T)
    s = quant.q8_1_sums(x) if quant.VEC_DOT_TYPE[ggml_type] == "Q8_1" else None     # (T, nb)
    return lanes, d16[..., 0], s


def matmul(x: np.ndarray, w_raw: np.ndarray, ggml_type: str, n_out: int) -> np.ndarray:
    """x (T, n_in) f32 times the weight's raw blocks (n_out rows of n_in, ggml_type in ORDERED_TYPES)
    -> (T, n_out) f32, each output as ggml's vec_dot computes it (the activations converted to the
    type's vec_dot_type first). Rows are taken in chunks so each step's arrays stay small."""
    x = np.ascontiguousarray(x, f32)
    T, n_in = x.shape
    block, block_bytes = quant.BLOCK_LAYOUT[ggml_type]
    raw = np.ascontiguousarray(w_raw).view(np.uint8).reshape(-1)
    if raw.size != quant.row_bytes(ggml_type, n_in) * n_out:
        raise ValueError(f"{ggml_type} weight of {n_out} rows of {n_in}: expected "
                         f"{quant.row_bytes(ggml_type, n_in) * n_out} bytes, got {raw.size}")
    blocks = raw.reshape(n_out, n_in // block, block_bytes)
    xq, xd, extra = _activations(x, ggml_type)
    out = np.empty((n_out, T), f32)
    lane_len = 4 if block == 32 else 34
    step = max(8, _LANE_PRODUCTS // (T * lane_len))
    for r in range(0, n_out, step):
        blk = blocks[r:r + step]
        if ggml_type == "Q4_K":
            out[r:r + step] = _chunk_q4_k(blk, xq, xd, extra)
        elif ggml_type == "Q6_K":
            out[r:r + step] = _chunk_q6_k(blk, xq, xd, extra)
        else:
            out[r:r + step] = _chunk_small(blk, ggml_type, xq, xd, extra)
    return out.T.copy()
