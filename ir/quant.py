"""Reference numerics of quantized matmuls: what llama.cpp's CPU backend computes on x86.

ggml multiplies a weight of type T by an f32 activation by first converting the activation row to
T's ``vec_dot_type`` (docs/numerics.md §6), then taking block dot products. This module is the
definition our kernels are tested against:

- ``quantize_activations`` reproduces the x86 activation quantization bit for bit and returns the
  values the dot product really sees (dequantized, as f32);
- ``matmul_reference`` multiplies those by the dequantized weight (gguf-py's dequantizers) in
  float64. Only the float summation order differs from any real kernel; ggml's own order, bit for
  bit, is ``ggml_vec_dot.matmul`` (what ``reference.matmul`` runs given the raw blocks).

numpy only: ir/ imports nothing else of llmc. gguf is imported lazily by the weight-side helpers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

@dataclass(frozen=True)
class WeightType:
    """One ggml weight type llmc reads: its GGUF id, block layout and the activation type it meets."""

    name: str               # ggml's name, e.g. "Q4_K"
    type_id: int            # ggml_type / GGUF tensor type id
    block: int              # elements per block
    block_bytes: int        # bytes per block
    vec_dot: str            # type the activations are converted to before the dot product (§6)


# Every weight type llmc's kernels take: the one list (C dispatch, binding checks, device profiles and
# tests derive theirs from it). Adding a type = a row here, its block layout in codegen/c/templates/
# _dequant.c.j2 and its dot kernel matmul_<type>.c.j2. Layouts: ggml's ggml-common.h (docs/numerics.md §5).
WEIGHT_TYPES: dict[str, WeightType] = {t.name: t for t in (
    WeightType("F32", 0, 1, 4, "F32"),
    WeightType("F16", 1, 1, 2, "F16"),
    WeightType("BF16", 30, 1, 2, "BF16"),
    WeightType("Q8_0", 8, 32, 34, "Q8_0"),
    WeightType("Q4_0", 2, 32, 18, "Q8_0"),
    WeightType("Q4_1", 3, 32, 20, "Q8_1"),
    WeightType("Q5_0", 6, 32, 22, "Q8_0"),
    WeightType("Q5_1", 7, 32, 24, "Q8_1"),
    WeightType("Q2_K", 10, 256, 84, "Q8_K"),
    WeightType("Q3_K", 11, 256, 110, "Q8_K"),
    WeightType("Q4_K", 12, 256, 144, "Q8_K"),
    WeightType("Q5_K", 13, 256, 176, "Q8_K"),
    WeightType("Q6_K", 14, 256, 210, "Q8_K"),
    WeightType("IQ4_NL", 20, 32, 18, "Q8_0"),
    WeightType("IQ4_XS", 23, 256, 136, "Q8_K"),
    WeightType("MXFP4", 39, 32, 17, "Q8_0"),
)}

# weight type -> type the activations are converted to before the dot product
VEC_DOT_TYPE: dict[str, str] = {name: t.vec_dot for name, t in WEIGHT_TYPES.items()}

# ggml type -> (elements per block, bytes per block): the weight types and the activation-only ones
BLOCK_LAYOUT: dict[str, tuple[int, int]] = {
    **{name: (t.block, t.block_bytes) for name, t in WEIGHT_TYPES.items()},
    "Q8_1": (32, 36),
    "Q8_K": (256, 292),
}

# Weights met by Q8_1 activations (Q4_1, Q5_1): f16 d, f16 m first in each block; m multiplies Q8_1's s.


def row_bytes(ggml_type: str, n: int) -> int:
    """Bytes of one row of n elements in ggml's block layout."""
    block, nbytes = BLOCK_LAYOUT[ggml_type]
    if n % block:
        raise ValueError(f"{ggml_type}: row length {n} is not a multiple of the block size {block}")
    return n // block * nbytes


def _round_f16(a: np.ndarray) -> np.ndarray:
    """f32 -> f16 (round to nearest even, as F16C) -> f32."""
    return a.astype(np.float32).astype(np.float16).astype(np.float32)


def _round_bf16(a: np.ndarray) -> np.ndarray:
    """f32 -> bf16 (round to nearest even; nan stays quiet nan) -> f32."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = np.where(nan, (u & 0xFFFF0000) | (64 << 16), ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16)
    return r.astype(np.uint32).view(np.float32)


def q8_blocks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x86 ``quantize_row_q8_0``/``q8_1`` on blocks of 32: (q int32 (..., 32), d f32 unrounded, d f16->f32).

    amax = max|x|, d = amax/127, q = round_half_even(x * (127/amax)), all in f32.
    """
    xb = x.astype(np.float32)
    amax = np.abs(xb).max(axis=-1, keepdims=True)
    d = amax / np.float32(127.0)
    with np.errstate(divide="ignore"):
        inv = np.where(amax != 0, np.float32(127.0) / amax, np.float32(0.0)).astype(np.float32)
    q = np.rint(xb * inv).astype(np.int32)
    return q, d.astype(np.float32), _round_f16(d)


def q8_k_blocks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``quantize_row_q8_K_ref`` (x86 uses the reference) on blocks of 256: (q int32, d f32).

    iscale = -127/x_at_max|x| (signed), q = min(127, nearest_int(iscale*x)), d = 1/iscale.
    """
    xb = x.astype(np.float32)
    imax = np.abs(xb).argmax(axis=-1)[..., None]
    vmax = np.take_along_axis(xb, imax, axis=-1)
    with np.errstate(divide="ignore"):
        iscale = np.where(vmax != 0, np.float32(-127.0) / vmax, np.float32(0.0)).astype(np.float32)
        d = np.where(vmax != 0, np.float32(1.0) / iscale, np.float32(0.0)).astype(np.float32)
    q = np.minimum(np.rint(xb * iscale), 127).astype(np.int32)
    return q, d


def _blocks(x: np.ndarray, block: int) -> np.ndarray:
    t, n = x.shape
    if n % block:
        raise ValueError(f"activation length {n} is not a multiple of the block size {block}")
    return x.reshape(t, n // block, block)


def quantize_activations(x: np.ndarray, vec_dot_type: str) -> np.ndarray:
    """Activations (T, n_in) f32 as the dot product sees them after conversion to vec_dot_type.

    Returns f32 (T, n_in): dequantized codes (Q8_0, Q8_1, Q8_K) or rounded values (F16, BF16, F32).
    """
    x = np.asarray(x, dtype=np.float32)
    t, n = x.shape
    if vec_dot_type == "F32":
        return x.copy()
    if vec_dot_type == "F16":
        return _round_f16(x)
    if vec_dot_type == "BF16":
        return _round_bf16(x)
    if vec_dot_type in ("Q8_0", "Q8_1"):
        q, _, d16 = q8_blocks(_blocks(x, 32))
        return (q.astype(np.float32) * d16).reshape(t, n)
    if vec_dot_type == "Q8_K":
        q, d = q8_k_blocks(_blocks(x, 256))
        return (q.astype(np.float32) * d).reshape(t, n)
    raise ValueError(f"unknown vec_dot_type {vec_dot_type!r}")


def q8_1_sums(x: np.ndarray) -> np.ndarray:
    """The ``s`` field of Q8_1 activation blocks, (T, n_in/32) f32: f16(d_f32 * Σq) read back.

    Q4_1·Q8_1 computes ``d4·d8·Σq4·q8 + m4·s``; s is rounded to f16 and uses the unrounded d, so it
    is not exactly (dequantized x)·1 and must be carried separately.
    """
    q, d, _ = q8_blocks(_blocks(np.asarray(x, dtype=np.float32), 32))
    s = d[..., 0] * q.sum(axis=-1).astype(np.float32)
    return _round_f16(s)


def dequantize(w_raw: np.ndarray, ggml_type: str, n_in: int, n_out: int) -> np.ndarray:
    """Weight bytes of a GGUF tensor with ne = [n_in, n_out] -> (n_out, n_in) f32 (no caching)."""
    from gguf import GGMLQuantizationType, quants

    raw = np.ascontiguousarray(w_raw).view(np.uint8).reshape(-1)
    expected = row_bytes(ggml_type, n_in) * n_out
    if raw.size != expected:
        raise ValueError(f"{ggml_type} weight [{n_in}, {n_out}]: expected {expected} bytes, got {raw.size}")
    qtype = GGMLQuantizationType[ggml_type]
    if ggml_type == "F32":
        w = raw.view(np.float32)
    elif ggml_type == "F16":
        w = raw.view(np.float16).astype(np.float32)
    else:
        w = quants.dequantize(raw.reshape(n_out, -1), qtype)
    return np.asarray(w, dtype=np.float32).reshape(n_out, n_in)


def _split_min(w_raw: np.ndarray, ggml_type: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Q4_1 / Q5_1 weights as (d·q (n_out, n_in), m (n_out, n_in/32)) f32: dequantized with m zeroed, and m."""
    block_bytes = BLOCK_LAYOUT[ggml_type][1]
    blocks = np.ascontiguousarray(w_raw).view(np.uint8).reshape(n_out, n_in // 32, block_bytes).copy()
    m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    blocks[..., 2:4] = 0
    return dequantize(blocks, ggml_type, n_in, n_out), m


def matmul_reference(w_raw: np.ndarray, ggml_type: str, x: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """y (T, n_out) f32 = activations converted to vec_dot_type @ dequantized Wᵀ, summed in float64.

    For Q4_1 and Q5_1 the per-block minimum multiplies the Q8_1 ``s`` field instead of the dequantized
    activations, as ggml_vec_dot_q4_1_q8_1 / q5_1_q8_1 do.
    """
    x = np.asarray(x, dtype=np.float32).reshape(-1, n_in)
    xq = quantize_activations(x, VEC_DOT_TYPE[ggml_type]).astype(np.float64)
    if VEC_DOT_TYPE[ggml_type] != "Q8_1":
        w = dequantize(w_raw, ggml_type, n_in, n_out).astype(np.float64)
        return (xq @ w.T).astype(np.float32)
    w_scaled, m = _split_min(w_raw, ggml_type, n_in, n_out)
    s = q8_1_sums(x).astype(np.float64)                               # (T, n_in/32)
    return (xq @ w_scaled.astype(np.float64).T + s @ m.astype(np.float64).T).astype(np.float32)
