"""Host-side data preparation for the AscendC kernels: weight repacking and RoPE tables.

Weights are repacked once at load time from ggml block layout into the structure-of-arrays planes the
matvec kernels read (docs/ascendc.md §6, like ggml-cann's transform): a quant plane and an fp16 scale
plane, rows padded to a multiple of 8 and each row to whole 32-byte blocks, so every DataCopy is
aligned. Layout "nibbles" keeps ggml's Q4_0 order (byte j of a block: low nibble = element j, high
nibble = element j + 16); layout "int8" stores q - 8 (Q4_0) or q (Q8_0) as int8 -- for 310P, which has
no ShiftRight to unpack nibbles.
"""

from __future__ import annotations

import numpy as np

QK = 32  # elements per Q4_0 / Q8_0 block
_BLOCK_BYTES = {"q4_0": 18, "q8_0": 34}


def _round_up(a: int, b: int) -> int:
    return -(-a // b) * b


def repack(quant: str, raw: np.ndarray, rows: int, k: int, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """ggml blocks (rows * k/32 blocks, little endian) -> (quant plane, fp16 scale plane).

    Returns qs (rows8, qs_stride) uint8 ("nibbles") or int8 ("int8") and scales (rows8, groups16)
    float16, where rows8 = rows rounded up to 8 and groups16 = k/32 rounded up to 16. Padding is zero
    (zero scales, so padded rows and groups contribute nothing).
    """
    if quant not in _BLOCK_BYTES or layout not in ("nibbles", "int8"):
        raise ValueError(f"repack: quant {quant!r} / layout {layout!r}")
    if layout == "nibbles" and quant != "q4_0":
        raise ValueError("the nibble layout is for q4_0 only")
    groups = k // QK
    blocks = np.frombuffer(np.ascontiguousarray(raw).tobytes(), dtype=np.uint8)
    blocks = blocks.reshape(rows, groups, _BLOCK_BYTES[quant])
    rows8, groups16 = _round_up(rows, 8), _round_up(groups, 16)
    scales = np.zeros((rows8, groups16), dtype=np.float16)
    scales[:rows, :groups] = blocks[:, :, :2].copy().view(np.float16)[..., 0]
    if layout == "nibbles":
        stride = _round_up(k // 2, 32)
        qs = np.zeros((rows8, stride), dtype=np.uint8)
        qs[:rows, : k // 2] = blocks[:, :, 2:].reshape(rows, k // 2)
        return qs, scales
    qs = np.zeros((rows8, k), dtype=np.int8)
    if quant == "q8_0":
        qs[:rows] = blocks[:, :, 2:].view(np.int8).reshape(rows, k)
    else:
        nib = blocks[:, :, 2:]
        lo = (nib & 0x0F).astype(np.int8) - 8
        hi = (nib >> 4).astype(np.int8) - 8
        qs[:rows] = np.concatenate([lo, hi], axis=2).reshape(rows, k)
    return qs, scales


def rope_tables(
    positions,
    head_dim: int,
    n_dims: int,
    mode: str,
    freq_base: float = 10000.0,
    freq_scale: float = 1.0,
    ext_factor: float = 0.0,
    attn_factor: float = 1.0,
    beta_fast: float = 32.0,
    beta_slow: float = 1.0,
    n_ctx_orig: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin tables (tokens, head_dim) float32 for the rope kernel, following ggml's CPU rope.

    Angles are built iteratively in f32 (theta_{i+1} = theta_i * base^(-2/n_dims)) with YaRN ramp
    and mscale as in docs/numerics.md §1. Each element gets its pair's cos and a signed sin
    (-sin on the pair's first element, +sin on its second); dims >= n_dims get cos 1, sin 0.
    """
    pos = np.asarray(positions, dtype=np.float32)
    half = n_dims // 2
    theta_scale = np.float32(freq_base) ** np.float32(-2.0 / n_dims)
    theta = np.empty((pos.size, half), dtype=np.float32)
    theta[:, 0] = pos
    for i in range(1, half):
        theta[:, i] = theta[:, i - 1] * theta_scale
    mscale = np.float32(attn_factor)
    theta_interp = np.float32(freq_scale) * theta
    if ext_factor != 0.0:

        def corr_dim(beta: float) -> float:
            return n_dims * np.log(n_ctx_orig / (beta * 2 * np.pi)) / (2 * np.log(freq_base))

        low = max(0.0, np.floor(corr_dim(beta_fast)))
        high = min(n_dims - 1.0, np.ceil(corr_dim(beta_slow)))
        ramp = 1.0 - np.clip((np.arange(half) - low) / max(0.001, high - low), 0.0, 1.0)
        mix = (ramp * ext_factor).astype(np.float32)
        theta = theta_interp * (1 - mix) + theta * mix
        mscale = np.float32(mscale * (1.0 + 0.1 * np.log(1.0 / freq_scale)))
    else:
        theta = theta_interp
    cos = (np.cos(theta) * mscale).astype(np.float32)
    sin = (np.sin(theta) * mscale).astype(np.float32)
    cos_t = np.ones((pos.size, head_dim), dtype=np.float32)
    sin_t = np.zeros((pos.size, head_dim), dtype=np.float32)
    if mode == "norm":  # pairs (2i, 2i + 1)
        cos_t[:, 0:n_dims:2] = cos
        cos_t[:, 1:n_dims:2] = cos
        sin_t[:, 0:n_dims:2] = -sin
        sin_t[:, 1:n_dims:2] = sin
    elif mode == "neox":  # pairs (i, i + n_dims / 2)
        cos_t[:, :half] = cos
        cos_t[:, half:n_dims] = cos
        sin_t[:, :half] = -sin
        sin_t[:, half:n_dims] = sin
    else:
        raise ValueError(f"rope mode {mode!r}; expected norm or neox")
    return cos_t, sin_t
