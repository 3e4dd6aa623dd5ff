"""The numpy reference: one function per op, the living definition of what each op computes.

Numerics follow llama.cpp's CPU backend (see docs/numerics.md): f32 activations, RMSNorm sum
in double, RoPE angles built by repeated f32 multiplication, K/V cache stored as f16, activations
quantized to the weight type's vec_dot_type before a matmul. Quantized matmuls (given the raw blocks),
attention, RoPE and GELU follow the summation orders of llama.cpp's one-token path bit for bit
(docs/numerics.md §10; ggml_vec_dot.py, ggml_order.py), query by query and row by row, so the result does
not depend on how many tokens a forward takes. Every kernel on every target is tested against these
functions.
"""
from __future__ import annotations

import math

import numpy as np

from . import ggml_order, ggml_vec_dot, pointwise, quant

f32 = np.float32


def embed(table: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """table (V, n) f32, tokens (T,) -> (T, n)."""
    return table[tokens].astype(f32)


def matmul(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, ggml_type: str = "F32",
           w_raw: np.ndarray | None = None) -> np.ndarray:
    """x (..., n_in) @ w (n_out, n_in)^T (+ bias). x is first converted to the weight type's vec_dot_type
    (Q8_0, Q8_1, Q8_K, f16, bf16) as llama.cpp does; w is the dequantized weight.

    Given the weight's raw blocks (w_raw, n_out rows of ggml_type) and a type of
    ggml_vec_dot.ORDERED_TYPES (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1, Q4_K, Q6_K), each output is summed in the
    order of ggml's x86 vec_dot for that type, bit for bit (docs/numerics.md §10); the
    other types, or without w_raw, sum in float64 and round once."""
    lead = x.shape[:-1]
    x2 = np.ascontiguousarray(x, f32).reshape(-1, x.shape[-1])
    if w_raw is not None and ggml_type in ggml_vec_dot.ORDERED_TYPES:
        y = ggml_vec_dot.matmul(x2, w_raw, ggml_type, w.shape[0])
    else:
        xq = quant.quantize_activations(x2, quant.VEC_DOT_TYPE[ggml_type])
        y = (xq.astype(np.float64) @ w.astype(np.float64).T).astype(f32)
    if bias is not None:
        y = y + bias.astype(f32)
    return y.reshape(*lead, w.shape[0])


def _pointwise(name: str):
    """The reference of a pointwise op, from its definition in ir/pointwise.py: inputs positionally (None
    for an absent optional one), then its attributes positionally or by keyword."""
    p = pointwise.OPS[name]

    def run(*args, **kw):
        ins, rest = list(args[:len(p.inputs)]), args[len(p.inputs):]
        attrs = {**dict(zip(p.attrs, rest)), **kw}
        return pointwise.reference(name, *ins, **attrs)
    run.__name__ = name
    run.__doc__ = f"{p.doc} (ir/pointwise.py)"
    return run


# one function for each op of ir/pointwise.py (add, mul, rms_norm, silu, softmax, ...), from its definition
globals().update({name: _pointwise(name) for name in pointwise.OPS})


def rope_cache(positions: np.ndarray, n_dims: int, base: float, freq_scale: float, ext_factor: float,
               attn_factor: float, beta_fast: float, beta_slow: float, n_ctx_orig: int,
               freq_factors: np.ndarray | None = None):
    """cos, sin (T, n_dims/2) f32 as ggml builds them: theta_{i+1} = theta_i * base^(-2/n_dims) in f32,
    divided by freq_factors[i] (n_dims/2,) when given (ggml_rope_ext's src2; before freq_scale and YaRN),
    YaRN ramp between the corrected dims when ext_factor != 0; then the C library's cosf/sinf (as ggml
    calls them: not correctly rounded, so float64 cos would differ in the last bit on ~1 % of angles)."""
    half = n_dims // 2
    theta_scale = ggml_order.libm_powf(base, f32(-2.0) / f32(n_dims))
    theta = np.empty((len(positions), half), f32)
    theta[:, 0] = positions.astype(f32)
    for i in range(1, half):
        theta[:, i] = theta[:, i - 1] * theta_scale
    if freq_factors is not None:
        theta = (theta / np.asarray(freq_factors, f32).reshape(half)).astype(f32)
    mscale = f32(attn_factor)
    theta_interp = (f32(freq_scale) * theta).astype(f32)
    if ext_factor != 0.0:
        def corr_dim(rot):
            return n_dims * math.log(n_ctx_orig / (rot * 2 * math.pi)) / (2 * math.log(base))
        low = max(0.0, math.floor(corr_dim(beta_fast)))
        high = min(n_dims - 1.0, math.ceil(corr_dim(beta_slow)))
        i = np.arange(half, dtype=f32)
        ramp = 1.0 - np.clip((i - low) / max(0.001, high - low), 0.0, 1.0)
        mix = (ramp * ext_factor).astype(f32)
        theta = (theta_interp * (1 - mix) + theta * mix).astype(f32)
        mscale = f32(mscale * (1.0 + 0.1 * math.log(1.0 / freq_scale)))
    else:
        theta = theta_interp
    return (ggml_order.cosf(theta) * mscale).astype(f32), (ggml_order.sinf(theta) * mscale).astype(f32)


_ROPE_TABLES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}    # a few recent cos/sin tables


def _rope_table(positions: np.ndarray, n_dims: int, *params, freq_factors: np.ndarray | None):
    """rope_cache, kept for the next call with the same positions and parameters (every layer's q and k
    share one table, and libm's cosf/sinf are called one angle at a time)."""
    key = (positions.tobytes(), n_dims, params, None if freq_factors is None else np.asarray(freq_factors, f32).tobytes())
    if key not in _ROPE_TABLES:
        if len(_ROPE_TABLES) >= 8:
            _ROPE_TABLES.pop(next(iter(_ROPE_TABLES)))
        _ROPE_TABLES[key] = rope_cache(positions, n_dims, *params, freq_factors)
    return _ROPE_TABLES[key]


def rope(x: np.ndarray, positions: np.ndarray, mode: str, n_dims: int, base: float, freq_scale: float = 1.0,
         ext_factor: float = 0.0, attn_factor: float = 1.0, beta_fast: float = 32.0, beta_slow: float = 1.0,
         n_ctx_orig: int = 0, freq_factors: np.ndarray | None = None) -> np.ndarray:
    """x (T, heads, head_dim). NORM rotates pairs (2i, 2i+1); NEOX rotates (i, i + n_dims/2).
    Dims at and past n_dims pass through. freq_factors (n_dims/2,): see rope_cache.
    The rotation as GCC contracts ggml's rotate_pairs: x0' = fmaf(x0, cos, -(x1·sin)),
    x1' = fmaf(x0, sin, x1·cos)."""
    if mode not in ("norm", "neox"):
        raise ValueError(f"unknown rope mode {mode!r}")
    cos, sin = _rope_table(np.asarray(positions, np.int64), n_dims, base, freq_scale, ext_factor, attn_factor,
                           beta_fast, beta_slow, n_ctx_orig, freq_factors=freq_factors)
    cos, sin = cos[:, None, :], sin[:, None, :]
    x = x.astype(f32)
    out = x.copy()
    pair = (slice(0, n_dims, 2), slice(1, n_dims, 2)) if mode == "norm" else \
        (slice(0, n_dims // 2), slice(n_dims // 2, n_dims))
    x0, x1 = x[..., pair[0]], x[..., pair[1]]
    out[..., pair[0]] = ggml_order.fma_f32(x0, cos, -(x1 * sin))
    out[..., pair[1]] = ggml_order.fma_f32(x0, sin, x1 * cos)
    return out


def attention(q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, q_pos: np.ndarray, scale: float,
              window: int, sinks: np.ndarray | None, logit_cap: float = 0.0) -> np.ndarray:
    """Causal GQA attention of this step's queries over the cache, each query as llama.cpp's non-flash
    path computes one token (so the result does not depend on how many queries come together).

    q (T, Hq, D) f32; k_cache, v_cache (n_kv, Hkv, D) already holding this step's keys (stored as f16);
    q_pos (T,) absolute positions; key j is visible to query t iff j <= q_pos[t] and
    (window == 0 or q_pos[t] - j < window). sinks (Hq,) are extra logits, unscaled, only in the
    denominator. logit_cap > 0 caps each logit: logit_cap * tanh(q·k * (scale / logit_cap)), as ggml's
    CPU flash attention does (ggml-cpu/ops.cpp divides scale by the cap, then takes cap * tanhf(s * scale));
    with scale 1 (Gemma 2 scales q instead) that is also the non-flash tanh(kq / c) * c. Returns (T, Hq * D).

    Order (docs/numerics.md §10): kq = ggml_vec_dot_f16(K row, f16 q); w = kq·scale, masked
    to -inf; max (and the sink); e = ggml_v_expf(w - max); the sum adds 16-key chunks (each reduced in f32)
    in double, plus expf(sink - max); p = f16(e · (float)(1/sum)); out[d] = ggml_vec_dot_f16 over the keys,
    which are padded with zero probability to a multiple of 64 as llama.cpp's n_kv (a multiple of 256)."""
    T, n_head, d = q.shape
    n_kv, n_head_kv, dv = v_cache.shape
    group = n_head // n_head_kv
    n_row = -(-n_kv // 64) * 64
    qh = q.astype(np.float16).astype(f32)                 # llama.cpp converts Q to f16 for K·Q
    k = np.zeros((n_row, n_head_kv, d), f32)
    v = np.zeros((n_row, n_head_kv, dv), f32)
    k[:n_kv], v[:n_kv] = k_cache, v_cache
    kpos = np.arange(n_row)
    visible = (kpos[None, :] <= q_pos[:, None]) & (kpos[None, :] < n_kv)
    if window > 0:
        visible &= (q_pos[:, None] - kpos[None, :]) < window
    out = np.empty((T, n_head, dv), f32)
    rows = max(1, (1 << 22) // (n_row * max(d, dv)))      # queries per pass: bounds the (rows, n_row, D) products
    for h in range(n_head):
        kh, vh_t = k[:, h // group, :], np.ascontiguousarray(v[:, h // group, :].T)
        for t0 in range(0, T, rows):
            t = slice(t0, t0 + rows)
            kq = ggml_order.vec_dot_f16(qh[t, None, h, :], kh[None, :, :])             # (rows, n_row)
            if logit_cap > 0:
                s = f32(logit_cap) * ggml_order.tanhf((kq * f32(f32(scale) / f32(logit_cap))).astype(f32))
            else:
                s = kq * f32(scale)
            w = np.where(visible[t], s, f32(-np.inf)).astype(f32)
            m = w.max(axis=1)
            if sinks is not None:
                m = np.maximum(m, f32(sinks[h]))
            e = ggml_order.expf(w - m[:, None])
            chunks = ggml_order.reduce_add_16(e.reshape(len(e), n_row // 16, 16)).astype(np.float64)
            total = np.cumsum(chunks, axis=1)[:, -1]                                   # in order, in double
            if sinks is not None:
                total = total + np.array([ggml_order.libm_expf(f32(sinks[h]) - mi) for mi in m], np.float64)
            p = (e * (1.0 / total).astype(f32)[:, None]).astype(np.float16).astype(f32)
            out[t, h, :] = ggml_order.vec_dot_f16(p[:, None, :], vh_t[None, :, :])
    return out.reshape(T, n_head * dv)


def top_k(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values per row, largest first (ties: lower index first)."""
    return np.argsort(-x, axis=-1, kind="stable")[..., :k].astype(np.int32)


def gather(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.take_along_axis(x, index.astype(np.int64), axis=-1).astype(f32)


def moe_matmul(x: np.ndarray, w: np.ndarray, selected: np.ndarray, bias: np.ndarray | None,
               ggml_type: str = "F32", w_raw: np.ndarray | None = None) -> np.ndarray:
    """For each token t and slot j: w[selected[t, j]] @ x[t] (+ bias[selected[t, j]]).
    x (T, n_in) is shared by all slots, or (T, k, n_in) per slot; w (E, n_out, n_in); -> (T, k, n_out).
    w_raw: the raw blocks of all experts (optional, see matmul)."""
    T, k = selected.shape
    xs = np.broadcast_to(x[:, None, :], (T, k, x.shape[-1])) if x.ndim == 2 else x
    raw = None if w_raw is None else np.ascontiguousarray(w_raw).view(np.uint8).reshape(w.shape[0], -1)
    out = np.empty((T, k, w.shape[1]), f32)
    for t in range(T):
        for j in range(k):
            e = int(selected[t, j])
            out[t, j] = matmul(xs[t, j][None, :], w[e], None if bias is None else bias[e], ggml_type,
                               None if raw is None else raw[e])[0]
    return out


def weighted_sum(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_j x[:, j] * weights[:, j], added in slot order as llama.cpp does."""
    out = (x[:, 0] * weights[:, 0:1]).astype(f32)
    for j in range(1, x.shape[1]):
        out = (out + x[:, j] * weights[:, j:j + 1]).astype(f32)
    return out
