"""Each OpenCL kernel against llmc.ir.reference (its definition), on the OpenCL device (PoCL in CI).

Programs are built once per session (and cached on disk by the runtime); hypothesis draws shapes and
values. Tolerances: f32 summation order only, except where noted."""
from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llmc.codegen.opencl import kernels
from llmc.ir import quant, reference

from tests.fixtures import weights
from tests.opencl.harness import need_opencl

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
f32 = np.float32


@functools.cache
def _source(ggml_type: str | None) -> str:
    return kernels.render_common() if ggml_type is None else kernels.render_typed(ggml_type)


def _kernel(name: str, ggml_type: str | None = None):
    dev = need_opencl()
    return dev, dev.kernel(_source(ggml_type), name)


def random_weight(ggml_type: str, n_out: int, n_in: int, rng) -> np.ndarray:
    """Random GGUF bytes (n_out rows of n_in) with sane scales: every code and nibble is exercised."""
    return weights.random_rows(ggml_type, rng, n_out, n_in, scale=0.1).reshape(n_out, -1)


def activations(ggml_type: str, x: np.ndarray):
    """x quantized as the matmul kernels of ggml_type read it, and its q8_1 block sums (a dummy otherwise)."""
    xq = quant.quantize_activations(x, quant.VEC_DOT_TYPE[ggml_type])
    xs = quant.q8_1_sums(x) if quant.VEC_DOT_TYPE[ggml_type] == "Q8_1" else np.zeros(1, f32)
    return xq, xs


@pytest.mark.parametrize("ggml_type", kernels.WEIGHT_TYPES)
@settings(max_examples=3, deadline=None)
@given(rows=st.integers(1, 3), seed=st.integers(0, 1000))
def test_matmul(ggml_type, rows, seed):
    dev, k = _kernel(f"matmul_{ggml_type.lower()}", ggml_type)
    rng = np.random.default_rng(seed)
    block = quant.BLOCK_LAYOUT[ggml_type][0]
    n_in, n_out = max(block, 64) * 2, 24
    w = random_weight(ggml_type, n_out, n_in, rng)
    x = rng.standard_normal((rows, n_in)).astype(f32)
    bias = rng.standard_normal(n_out).astype(f32)
    want = quant.matmul_reference(w, ggml_type, x, n_in, n_out) + bias
    xq, xs = activations(ggml_type, x)   # act_* is tested on its own below
    y = dev.buffer(nbytes=rows * n_out * 4)
    dev.run(k, (n_out, rows), ("m", y), ("m", dev.buffer(w)), ("m", dev.buffer(xq)), ("m", dev.buffer(xs)),
            ("m", dev.buffer(bias)), ("i", n_in), ("i", n_out))
    got = dev.read(y, (rows, n_out))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def check_matmul_group(dev, k, ggml_type: str, x: np.ndarray, rng, grid_rows: int, *tail) -> None:
    """Run a group kernel of three members sharing x (rows, n_in), the second without a bias, each member's
    rows starting at a whole work-group (8), over grid (32, grid_rows); `tail` are extra trailing args
    (the tiled kernel's row count). Each member must equal the reference matmul."""
    rows, n_in = x.shape
    n_outs = [24, 5, 13]
    ws = [random_weight(ggml_type, n, n_in, rng) for n in n_outs]
    biases = [rng.standard_normal(n).astype(f32) if i != 1 else None for i, n in enumerate(n_outs)]
    xq, xs = activations(ggml_type, x)
    ys = [dev.buffer(nbytes=rows * n * 4) for n in n_outs]
    starts = [0, 24, 24 + 8, 24 + 8 + 16]
    args = [("m", y) for y in ys] + [("m", None)] + [("m", dev.buffer(w)) for w in ws] + [("m", None)]
    args += [("m", None if b is None else dev.buffer(b)) for b in biases] + [("m", None)]
    args += [("m", dev.buffer(xq)), ("m", dev.buffer(xs)), ("i", n_in)] + [("i", n) for n in n_outs + [0]]
    args += [("i", s) for s in starts[1:]] + list(tail)
    dev.run(k, (starts[3], grid_rows), *args, local=(8, 1))
    for y, w, b, n in zip(ys, ws, biases, n_outs):
        want = quant.matmul_reference(w, ggml_type, x, n_in, n) + (0 if b is None else b)
        np.testing.assert_allclose(dev.read(y, (rows, n)), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("ggml_type", ["Q4_0", "Q4_1", "Q8_0", "Q6_K", "F16"])
def test_matmul_group(ggml_type):
    """Three matmuls sharing x in one launch, each member's rows starting at a whole work-group (8)."""
    dev, k = _kernel(f"matmul_group_{ggml_type.lower()}", ggml_type)
    rng = np.random.default_rng(7)
    rows, n_in = 2, max(quant.BLOCK_LAYOUT[ggml_type][0], 64) * 2
    check_matmul_group(dev, k, ggml_type, rng.standard_normal((rows, n_in)).astype(f32), rng, rows)


@SETTINGS
@given(act=st.sampled_from(["q8_0", "q8_1", "q8_k", "f16", "bf16"]), seed=st.integers(0, 1000))
def test_activation_quantizers_are_bit_exact(act, seed):
    dev, k = _kernel(f"act_{act}")
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((2, 512)) * rng.uniform(0.01, 10)).astype(f32)
    x[0, :32] = 0.0                                    # an all-zero block
    xq, xs = dev.buffer(nbytes=x.nbytes), dev.buffer(nbytes=x.nbytes // 32)
    items = x.size // {"q8_0": 32, "q8_1": 32, "q8_k": 256}.get(act, 1)
    dev.run(k, (items,), ("m", xq), ("m", xs), ("m", dev.buffer(x)))
    np.testing.assert_array_equal(dev.read(xq, x.shape), quant.quantize_activations(x, act.upper()))
    if act == "q8_1":
        np.testing.assert_array_equal(dev.read(xs, (2, 16)), quant.q8_1_sums(x))


@SETTINGS
@given(ggml_type=st.sampled_from(["Q4_0", "Q8_0", "MXFP4", "Q4_1", "Q5_1", "Q4_K"]), x_per_slot=st.booleans(),
       seed=st.integers(0, 99))
def test_moe_matmul(ggml_type, x_per_slot, seed):
    dev, k = _kernel(f"moe_matmul_{ggml_type.lower()}", ggml_type)
    rng = np.random.default_rng(seed)
    E, T, K, n_in, n_out = 4, 2, 2, max(64, quant.BLOCK_LAYOUT[ggml_type][0]), 16
    w = np.stack([random_weight(ggml_type, n_out, n_in, rng) for _ in range(E)])
    sel = rng.integers(0, E, (T, K)).astype(np.int32)
    x = rng.standard_normal((T, K, n_in) if x_per_slot else (T, n_in)).astype(f32)
    bias = rng.standard_normal((E, n_out)).astype(f32)
    wf = np.stack([quant.dequantize(w[e], ggml_type, n_in, n_out) for e in range(E)])
    want = reference.moe_matmul(x, wf, sel, bias, ggml_type)
    if quant.VEC_DOT_TYPE[ggml_type] == "Q8_1":   # the Q8_1 sums route: quant.matmul_reference per slot
        xs3 = np.broadcast_to(x[:, None], (T, K, n_in)) if not x_per_slot else x
        want = np.stack([[quant.matmul_reference(w[sel[t, j]], ggml_type, xs3[t, j][None], n_in, n_out)[0] + bias[sel[t, j]]
                          for j in range(K)] for t in range(T)])
    flat = x.reshape(-1, n_in)
    xq, xs = activations(ggml_type, flat)
    y = dev.buffer(nbytes=T * K * n_out * 4)
    dev.run(k, (n_out, K, T), ("m", y), ("m", dev.buffer(w)), ("m", dev.buffer(xq)), ("m", dev.buffer(xs)),
            ("m", dev.buffer(sel)), ("m", dev.buffer(bias)), ("i", n_in), ("i", n_out), ("i", K), ("i", int(x_per_slot)))
    np.testing.assert_allclose(dev.read(y, (T, K, n_out)), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("ggml_type", kernels.WEIGHT_TYPES)
@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 99))
def test_embed(ggml_type, seed):
    dev, k = _kernel(f"embed_{ggml_type.lower()}", ggml_type)
    rng = np.random.default_rng(seed)
    n = 256
    table = random_weight(ggml_type, 10, n, rng)
    tokens = np.array([3, 0, 9], np.int32)
    want = reference.embed(quant.dequantize(table, ggml_type, n, 10), tokens)
    y = dev.buffer(nbytes=want.nbytes)
    dev.run(k, (n // quant.BLOCK_LAYOUT[ggml_type][0], 3), ("m", y), ("m", dev.buffer(table)),
            ("m", dev.buffer(tokens)), ("i", n))
    np.testing.assert_array_equal(dev.read(y, want.shape), want)


@SETTINGS
@given(k=st.integers(1, 4), seed=st.integers(0, 99))
def test_router_ops(k, seed):
    rng = np.random.default_rng(seed)
    T, n = 3, 8
    x = rng.standard_normal((T, n)).astype(f32)
    x[0, 2] = x[0, 5]                                   # a tie: the lower index first
    dev = need_opencl()
    X = dev.buffer(x)
    idx = dev.buffer(nbytes=T * k * 4)
    dev.run(dev.kernel(_source(None), "top_k_f32"), (T,), ("m", idx), ("m", X), ("i", n), ("i", k))
    got = dev.read(idx, (T, k), np.int32)
    np.testing.assert_array_equal(got, reference.top_k(x, k))
    g = dev.buffer(nbytes=T * k * 4)
    dev.run(dev.kernel(_source(None), "gather_f32"), (T * k,), ("m", g), ("m", X), ("m", idx), ("i", n), ("i", k))
    gathered = dev.read(g, (T, k))
    np.testing.assert_array_equal(gathered, reference.gather(x, got))
    xs = rng.standard_normal((T, k, 16)).astype(f32)
    y = dev.buffer(nbytes=T * 16 * 4)
    dev.run(dev.kernel(_source(None), "weighted_sum_f32"), (T * 16,), ("m", y), ("m", dev.buffer(xs)), ("m", g),
            ("i", k), ("i", 16))
    np.testing.assert_array_equal(dev.read(y, (T, 16)), reference.weighted_sum(xs, gathered))


ROPES = [("norm", 64, 64, 0.0, 1.0), ("neox", 64, 32, 0.0, 1.0), ("neox", 64, 64, 1.0, 0.25)]


@SETTINGS
@given(case=st.sampled_from(ROPES), factors=st.booleans(), seed=st.integers(0, 99))
def test_rope(case, factors, seed):
    import math
    mode, head_dim, n_dims, ext, freq = case
    rng = np.random.default_rng(seed)
    T, H = 3, 2
    x = rng.standard_normal((T, H, head_dim)).astype(f32)
    pos = np.array([0, 7, 300], np.int32)
    params = dict(mode=mode, n_dims=n_dims, base=10000.0, freq_scale=freq, ext_factor=ext, attn_factor=1.0,
                  beta_fast=32.0, beta_slow=1.0, n_ctx_orig=4096)
    # Llama 3.x rope_freqs: per-pair divisors of the angle, 1..8 so that ignoring them cannot pass
    freq_factors = rng.uniform(1.0, 8.0, n_dims // 2).astype(f32) if factors else None
    want = reference.rope(x, pos, freq_factors=freq_factors, **params)
    low, span, mscale = 0.0, 1.0, 1.0
    if ext:
        def corr(rot):
            return n_dims * math.log(4096 / (rot * 2 * math.pi)) / (2 * math.log(10000.0))
        low = max(0.0, math.floor(corr(32.0)))
        span = max(0.001, min(n_dims - 1.0, math.ceil(corr(1.0))) - low)
        mscale = 1.0 + 0.1 * math.log(1.0 / freq)
    dev = need_opencl()
    y = dev.buffer(nbytes=x.nbytes)
    dev.run(dev.kernel(_source(None), "rope_f32"), (head_dim // 2, H, T), ("m", y), ("m", dev.buffer(x)),
            ("m", dev.buffer(pos)), ("m", None if freq_factors is None else dev.buffer(freq_factors)), ("i", H), ("i", head_dim), ("i", 2 if mode == "neox" else 0), ("i", n_dims),
            ("f", float(f32(math.pow(10000.0, -2.0 / n_dims)))), ("f", freq), ("f", ext), ("f", low), ("f", span),
            ("f", mscale))
    # cos/sin of angles up to 300 rad: the device's and numpy's libm differ by a few ulp of the angle
    np.testing.assert_allclose(dev.read(y, x.shape), want, rtol=0, atol=2e-5)


@SETTINGS
@given(window=st.sampled_from([0, 3]), sinks=st.booleans(), T=st.integers(1, 4), softcap=st.sampled_from([0.0, 0.5]),
       stored=st.booleans(), seed=st.integers(0, 99))
def test_attention(window, sinks, T, softcap, stored, seed):
    """stored: the prefill launch, kv_store_f32 first and attention reading every key from the caches."""
    rng = np.random.default_rng(seed)
    Hq, Hkv, d, n_ctx, pos = 4, 2, 16, 16, 5
    q = rng.standard_normal((T, Hq, d)).astype(f32)
    k_new = rng.standard_normal((T, Hkv, d)).astype(f32)
    v_new = rng.standard_normal((T, Hkv, d)).astype(f32)
    cache_k = rng.standard_normal((n_ctx, Hkv, d)).astype(np.float16)
    cache_v = rng.standard_normal((n_ctx, Hkv, d)).astype(np.float16)
    s = rng.standard_normal(Hq).astype(f32) if sinks else None
    dev = need_opencl()
    K, V = dev.buffer(cache_k), dev.buffer(cache_v)
    kv_store = dev.kernel(_source(None), "kv_store_f32")          # fills a cache from outside attention
    K2 = dev.buffer(cache_k)
    dev.run(kv_store, (T * Hkv * d,), ("m", K2), ("m", dev.buffer(cache_v)), ("m", dev.buffer(k_new)),
            ("m", dev.buffer(v_new)), ("l", pos * Hkv * d))
    if stored:
        dev.run(kv_store, (T * Hkv * d,), ("m", K), ("m", V), ("m", dev.buffer(k_new)), ("m", dev.buffer(v_new)),
                ("l", pos * Hkv * d))
    out = dev.buffer(nbytes=q.nbytes)
    scores = dev.buffer(nbytes=T * Hq * n_ctx * 4)
    dev.run(dev.kernel(_source(None), "attention_f32"), (Hq, T), ("m", out), ("m", dev.buffer(q)),
            ("m", dev.buffer(k_new)), ("m", dev.buffer(v_new)), ("m", K), ("m", V),
            ("m", None if s is None else dev.buffer(s)), ("m", scores), ("i", pos), ("i", Hq), ("i", Hkv), ("i", d),
            ("i", n_ctx), ("f", 0.25), ("i", window), ("f", softcap), ("i", int(stored)))
    cache_k[pos:pos + T], cache_v[pos:pos + T] = k_new, v_new        # attention (or kv_store) stored the rows
    np.testing.assert_array_equal(dev.read(K, cache_k.shape, np.float16), cache_k)
    np.testing.assert_array_equal(dev.read(V, cache_v.shape, np.float16), cache_v)
    np.testing.assert_array_equal(dev.read(K2, cache_k.shape, np.float16), cache_k)
    want = reference.attention(q, cache_k[:pos + T].astype(f32), cache_v[:pos + T].astype(f32),
                               np.arange(pos, pos + T), 0.25, window, s, softcap)
    # the reference rounds the probabilities to f16 as llama.cpp does (docs/numerics.md §10), this kernel keeps
    # them in f32: each output moves by at most 2^-11 · Σ p·|v| <= 2^-11 · max|v|
    bound = 2.0**-11 * np.abs(cache_v[:pos + T].astype(f32)).max() + 1e-5
    np.testing.assert_allclose(dev.read(out, want.shape), want, rtol=0, atol=bound)


def test_f16_conversions_match_ieee():
    """round_f16 and llmc_f16_to_f32 are bit operations (the drivers' vload_half/vstore_half_rte can be slow
    software routines): every f16 value converts exactly, and f32 values round to nearest even like numpy,
    at ties, around the subnormal and overflow edges, and for infinities and NaN."""
    from llmc.codegen.opencl.kernels import ENV
    dev = need_opencl()
    src = ENV.from_string('{% from "_common.cl.j2" import preamble %}{{ preamble(["test"]) }}').render() + """
__kernel void widen(__global float *y, __global const ushort *h) { y[get_global_id(0)] = llmc_f16_to_f32(h[get_global_id(0)]); }
__kernel void narrow(__global float *y, __global const float *x) { y[get_global_id(0)] = round_f16(x[get_global_id(0)]); }
"""
    bits = np.arange(65536, dtype=np.uint16)
    y = dev.buffer(nbytes=65536 * 4)
    dev.run(dev.kernel(src, "widen"), (65536,), ("m", y), ("m", dev.buffer(bits)))
    want = bits.view(np.float16).astype(f32)
    got = dev.read(y, (65536,))
    np.testing.assert_array_equal(got.view(np.uint32)[~np.isnan(want)], want.view(np.uint32)[~np.isnan(want)])
    assert np.isnan(got[np.isnan(want)]).all()
    rng = np.random.default_rng(0)
    halves = bits.view(np.float16).astype(np.float64)
    finite = halves[np.isfinite(halves)]
    ties = (np.sort(finite)[1:] + np.sort(finite)[:-1]) / 2          # exactly between two f16 values
    x = np.concatenate([ties, ties + 1e-12, ties - 1e-12, [65504, 65519.99, 65520, 70000, np.inf, -np.inf, np.nan],
                        rng.standard_normal(4096) * 10.0 ** rng.integers(-9, 5, 4096)]).astype(f32)
    y = dev.buffer(nbytes=x.nbytes)
    dev.run(dev.kernel(src, "narrow"), (len(x),), ("m", y), ("m", dev.buffer(x)))
    with np.errstate(over="ignore"):                              # 70000 and up become inf, as wanted
        want = x.astype(np.float16).astype(f32)
    got = dev.read(y, x.shape)
    np.testing.assert_array_equal(got, want)
