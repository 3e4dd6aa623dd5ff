"""Property tests of the numpy reference: each op against an independent formulation or a known law."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from llmc.ir import quant
from llmc.ir import reference as ref

floats = st.floats(-4, 4, width=32)
settings.register_profile("llmc", deadline=None, max_examples=40)
settings.load_profile("llmc")


@given(st.integers(1, 6), st.integers(1, 4), st.sampled_from([8, 16, 64]), st.sampled_from(["norm", "neox"]),
       st.integers(0, 5000), st.booleans())
def test_rope_preserves_norms(T, heads, head_dim, mode, start, yarn):
    rng = np.random.default_rng(T * heads + start)
    x = rng.standard_normal((T, heads, head_dim)).astype(np.float32)
    pos = np.arange(start, start + T, dtype=np.int32)
    kw = dict(freq_scale=0.25, ext_factor=1.0, n_ctx_orig=4096) if yarn else {}
    y = ref.rope(x, pos, mode, head_dim, 10000.0, **kw)
    scale = (1 + 0.1 * np.log(4.0)) if yarn else 1.0          # YaRN's mscale multiplies cos and sin
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), scale * np.linalg.norm(x, axis=-1), rtol=1e-4)


def test_rope_at_position_zero_is_identity_and_rotates_pairs():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 16)
    np.testing.assert_array_equal(ref.rope(x, np.array([0]), "norm", 16, 10000.0), x)
    y = ref.rope(x, np.array([1]), "norm", 16, 10000.0)            # pair (0, 1) turns by 1 radian
    np.testing.assert_allclose(y[0, 0, :2], [0 * np.cos(1) - 1 * np.sin(1), 0 * np.sin(1) + 1 * np.cos(1)],
                               rtol=1e-6)


@given(st.sampled_from(["norm", "neox"]), st.sampled_from([2.0, 4.0, 8.0]), st.integers(0, 3000))
def test_rope_freq_factors_divide_every_angle(mode, factor, pos):
    """A constant freq_factor c is freq_scale 1/c (both divide every angle); a factor on one pair turns that
    pair alone, by pos * theta_i / c radians."""
    rng = np.random.default_rng(pos)
    x = rng.standard_normal((1, 2, 16)).astype(np.float32)
    p = np.array([pos], np.int32)
    same = np.full(8, factor, np.float32)
    np.testing.assert_allclose(ref.rope(x, p, mode, 16, 10000.0, freq_factors=same),
                               ref.rope(x, p, mode, 16, 10000.0, freq_scale=1.0 / factor), atol=2e-6 * max(pos, 1))
    one = np.ones(8, np.float32)
    one[0] = factor                                                 # pair 0 has theta_0 = pos
    y, plain = ref.rope(x, p, mode, 16, 10000.0, freq_factors=one), ref.rope(x, p, mode, 16, 10000.0)
    a, b = (0, 1) if mode == "norm" else (0, 8)
    angle = pos / factor
    np.testing.assert_allclose(y[..., a], x[..., a] * np.cos(angle) - x[..., b] * np.sin(angle), atol=1e-4)
    rest = [d for d in range(16) if d not in (a, b)]
    np.testing.assert_array_equal(y[..., rest], plain[..., rest])


@given(arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 50)), elements=st.floats(-30, 30, width=32)))
def test_softmax_rows_sum_to_one(x):
    y = ref.softmax(x)
    assert (y >= 0).all()
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)


@given(arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 70)), elements=floats))
def test_rms_norm_equals_decomposition(x):
    eps = 1e-5
    direct = ref.rms_norm(x, eps)
    decomposed = ref.mul(x, ref.rsqrt(ref.scale(ref.mean(ref.sqr(x)), 1.0, eps)))
    np.testing.assert_allclose(direct, decomposed, rtol=1e-6, atol=1e-7)
    expected = x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps)
    np.testing.assert_allclose(direct, expected, rtol=1e-5, atol=1e-6)


BOUNDS = {"Q8_0": 1 / 200, "Q4_0": 1 / 8, "Q4_1": 1 / 15, "MXFP4": 1 / 2}    # max error / block max|x| (scales stored as f16)


@given(st.sampled_from(sorted(BOUNDS)), st.integers(1, 4), st.integers(0, 2**31))
def test_dequantize_quantize_within_format_bound(qtype, n_blocks, seed):
    import gguf
    x = np.random.default_rng(seed).standard_normal((3, 32 * n_blocks)).astype(np.float32)
    raw = gguf.quants.quantize(x, gguf.GGMLQuantizationType[qtype])
    y = quant.dequantize(raw, qtype, x.shape[1], x.shape[0])
    blocks = np.abs(x).reshape(3, n_blocks, 32).max(-1, keepdims=True)
    err = np.abs(y - x).reshape(3, n_blocks, 32)
    assert (err <= BOUNDS[qtype] * blocks * 1.01 + 1e-6).all()


@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**31))
def test_moe_with_one_expert_equals_dense_ffn(T, k, seed):
    rng = np.random.default_rng(seed)
    n, f = 32, 64
    x = rng.standard_normal((T, n)).astype(np.float32)
    wg, wu, wd = (rng.standard_normal(s).astype(np.float32) / 4 for s in ((1, f, n), (1, f, n), (1, n, f)))
    sel = np.zeros((T, 1), np.int32)
    gate = ref.softmax(ref.gather(np.zeros((T, 1), np.float32), sel))
    act = ref.swiglu(ref.moe_matmul(x, wg, sel, None), ref.moe_matmul(x, wu, sel, None))
    moe = ref.weighted_sum(ref.moe_matmul(act, wd, sel, None), gate)
    dense = ref.matmul(ref.swiglu(ref.matmul(x, wg[0], None), ref.matmul(x, wu[0], None)), wd[0], None)
    np.testing.assert_allclose(moe, dense, rtol=1e-5, atol=1e-5)


@given(st.integers(1, 12), st.integers(0, 8), st.booleans())
def test_attention_with_window_covering_sequence_equals_full(T, start, sinks):
    rng = np.random.default_rng(T + 13 * start)
    n = start + T
    q = rng.standard_normal((T, 4, 16)).astype(np.float32)
    k = rng.standard_normal((n, 2, 16)).astype(np.float16)
    v = rng.standard_normal((n, 2, 16)).astype(np.float16)
    s = rng.standard_normal(4).astype(np.float32) if sinks else None
    pos = np.arange(start, n, dtype=np.int32)
    full = ref.attention(q, k, v, pos, 0.25, 0, s)
    np.testing.assert_array_equal(ref.attention(q, k, v, pos, 0.25, n, s), full)
    if n > 2:
        assert not np.array_equal(ref.attention(q, k, v, pos, 0.25, 2, s)[-1], full[-1])


def test_attention_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((3, 4, 8)).astype(np.float32)
    k, v = (rng.standard_normal((5, 2, 8)).astype(np.float16) for _ in range(2))
    sinks = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    pos = np.array([2, 3, 4])
    out = ref.attention(q, k, v, pos, 0.3, 2, sinks).reshape(3, 4, 8)
    for t in range(3):
        for h in range(4):
            keys = [j for j in range(5) if j <= pos[t] and pos[t] - j < 2]
            z = np.array([0.3 * float(q[t, h].astype(np.float16).astype(np.float64) @ k[j, h // 2]) for j in keys])
            w = np.exp(z - max(z.max(), sinks[h]))
            w = w / (w.sum() + np.exp(sinks[h] - max(z.max(), sinks[h])))
            vk = v[keys, h // 2].astype(np.float64)
            # llama.cpp rounds the probabilities to f16 (relative error <= 2^-11) before the product with V
            bound = 2.0**-11 * (w[:, None] * np.abs(vk)).sum(0) + 1e-6
            assert (np.abs(out[t, h] - (w[:, None] * vk).sum(0)) <= bound).all()


def test_swiglu_oai_clamps_as_gpt_oss():
    g = np.array([10.0, -10.0, 1.0], np.float32)
    u = np.array([10.0, -10.0, 0.5], np.float32)
    y = ref.swiglu_oai(g, u, 1.702, 7.0)
    sig = lambda z: 1 / (1 + np.exp(-1.702 * z))  # noqa: E731
    np.testing.assert_allclose(y, [7 * sig(7) * 8, -10 * sig(-10) * -6, 1 * sig(1) * 1.5], rtol=1e-6)


def test_top_k_and_weighted_sum_order():
    x = np.array([[0.1, 3.0, 2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(ref.top_k(x, 3), [[1, 3, 2]])
    vals = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    w = np.array([[0.5, 0.25, 0.25]], np.float32)
    np.testing.assert_allclose(ref.weighted_sum(vals, w), [[3.0, 4.0, 5.0, 6.0]])
