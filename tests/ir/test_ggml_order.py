"""The reference's summation orders pinned bit for bit: quantized matmuls against a scalar transcription of
ggml's vec_dot loops (tests/ir/vec_dot_scalar.py), the exact f32 fma on its hard cases; attention and GELU
against the one-query loops of tests/codegen/ggml_cpu_order.py (the oracle of the C kernels too)."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmc.ir import ggml_order, ggml_vec_dot, quant
from llmc.ir import reference as ref
from tests.codegen import ggml_cpu_order
from tests.ir import vec_dot_scalar

f32 = np.float32
settings.register_profile("llmc", deadline=None, max_examples=40)
settings.load_profile("llmc")


def random_blocks(rng, ggml_type: str, n_out: int, n_in: int) -> np.ndarray:
    """Random bytes in ggml's block layout, the f16 scales set to finite values of a realistic size."""
    block, nbytes = quant.BLOCK_LAYOUT[ggml_type]
    raw = rng.integers(0, 256, (n_out, n_in // block, nbytes), dtype=np.uint8)
    fields = {"Q8_0": [(0, 1e-2)], "Q4_0": [(0, 1e-2)], "Q5_0": [(0, 1e-2)], "Q4_1": [(0, 1e-2), (2, 1e-2)],
              "Q5_1": [(0, 1e-2), (2, 1e-2)], "Q4_K": [(0, 1e-3), (2, 1e-3)], "Q6_K": [(208, 1e-3)]}[ggml_type]
    for at, size in fields:
        d = (size * rng.uniform(0.05, 1.0, raw.shape[:2]) * rng.choice([-1, 1], raw.shape[:2])).astype(np.float16)
        raw[..., at:at + 2] = d.view(np.uint8).reshape(raw.shape[:2] + (2,))
    return raw.reshape(n_out, -1)


def activations(rng, T: int, n_in: int) -> np.ndarray:
    """Rows with a spread of block magnitudes (as real activations have), so the f32 rounding matters."""
    x = rng.standard_normal((T, n_in)) * np.exp(rng.uniform(-3, 3, (T, n_in // 32, 1))).repeat(32, -1).reshape(T, n_in)
    return x.astype(f32)


@given(st.sampled_from(ggml_vec_dot.ORDERED_TYPES), st.integers(1, 3), st.integers(1, 2), st.integers(0, 2**31))
def test_matmul_equals_scalar_vec_dot(ggml_type, n_out, T, seed):
    rng = np.random.default_rng(seed)
    n_in = 256 * int(rng.integers(1, 3))
    raw, x = random_blocks(rng, ggml_type, n_out, n_in), activations(rng, T, n_in)
    np.testing.assert_array_equal(ggml_vec_dot.matmul(x, raw, ggml_type, n_out),
                                  vec_dot_scalar.matmul(x, raw, ggml_type, n_out))


@pytest.mark.parametrize("ggml_type", ggml_vec_dot.ORDERED_TYPES)
def test_order_is_not_the_float64_sum(ggml_type):
    """The order is observable: on these rows the float64 sum rounds differently from ggml's lanes, and
    reference.matmul with the raw blocks gives ggml's value (the scalar transcription's)."""
    rng = np.random.default_rng(7)
    n_out, n_in, T = 24, 512, 2
    raw, x = random_blocks(rng, ggml_type, n_out, n_in), activations(rng, T, n_in)
    w = quant.dequantize(raw, ggml_type, n_in, n_out)
    ordered = ref.matmul(x, w, None, ggml_type, raw)
    np.testing.assert_array_equal(ordered, vec_dot_scalar.matmul(x, raw, ggml_type, n_out))
    assert (ordered != quant.matmul_reference(raw, ggml_type, x, n_in, n_out)).any()
    np.testing.assert_allclose(ordered, ref.matmul(x, w, None, ggml_type), rtol=1e-4, atol=1e-3)


def test_matmul_chunks_rows_without_changing_a_bit(monkeypatch):
    """Rows are taken in chunks (and batch rows alike): the chunk size changes no output."""
    rng = np.random.default_rng(3)
    raw, x = random_blocks(rng, "Q8_0", 300, 256), activations(rng, 5, 256)
    whole = ggml_vec_dot.matmul(x, raw, "Q8_0", 300)
    monkeypatch.setattr(ggml_vec_dot, "_LANE_PRODUCTS", 64)
    np.testing.assert_array_equal(ggml_vec_dot.matmul(x, raw, "Q8_0", 300), whole)
    np.testing.assert_array_equal(ggml_vec_dot.matmul(x[3:4], raw, "Q8_0", 300), whole[3:4])


def test_matmul_names_a_wrong_byte_count():
    with pytest.raises(ValueError, match="Q5_0 weight of 3 rows of 64: expected 132 bytes, got 130"):
        ggml_vec_dot.matmul(np.zeros((1, 64), f32), np.zeros(130, np.uint8), "Q5_0", 3)


# fmaf's hard case: a·b + c exactly halfway between two f32 in float64 but not in exact arithmetic
# (a·b = ±(2^-16 - 2^-62)), where rounding the float64 sum to f32 goes the wrong way.
_A, _B, _C = f32((2**23 + 1) * 2.0**-62), f32(2**23 - 1), f32(256 + 2**-15)


def exact_fma(a, b, c) -> np.float32:
    return vec_dot_scalar.round_f32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))


@pytest.mark.parametrize("sign", [1, -1])
def test_fma_f32_on_a_double_rounding_case(sign):
    a = f32(sign * _A)
    want = exact_fma(a, _B, _C)
    assert f32(float(a) * float(_B) + float(_C)) != want           # the naive float64 form is wrong here
    assert ggml_order.fma_f32(a, _B, _C) == want
    chain = ggml_order.FmaChain(1, (1,))
    chain.step(np.array([_C]), np.array([[1]], f32), 1)            # acc = c, exactly
    chain.step(np.array([a]), np.array([[_B]], f32), float(_B))
    assert chain.checked_steps == 1 and chain.acc[0, 0] == want


@given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=3, max_size=3), st.integers(-40, 40))
def test_fma_f32_is_correctly_rounded(abc, shift):
    a, b, c = f32(abc[0]), f32(abc[1]), f32(np.ldexp(f32(abc[2]), shift))
    assert ggml_order.fma_f32(a, b, c) == exact_fma(a, b, c)


@given(st.integers(1, 200), st.integers(0, 2**31))
def test_vec_dot_f16_equals_scalar_loop(n, seed):
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal((2, n)).astype(np.float16).astype(f32) for _ in range(2))
    got = ggml_order.vec_dot_f16(a, b)
    for r in range(2):
        assert got[r] == vec_dot_scalar.vec_dot_f16(a[r], b[r])


@settings(max_examples=15)
@given(st.integers(1, 5), st.integers(0, 150), st.sampled_from([0, 3]), st.booleans(), st.integers(0, 2**31))
def test_attention_equals_one_query_loops_and_is_batch_invariant(T, start, window, sinks, seed):
    rng = np.random.default_rng(seed)
    n, d = start + T, 80                                           # 80: one 64-step and 16 leftovers
    q = rng.standard_normal((T, 2, d)).astype(f32)
    k, v = (rng.standard_normal((n, 1, d)).astype(np.float16).astype(f32) for _ in range(2))
    s = rng.standard_normal(2).astype(f32) if sinks else None
    pos = np.arange(start, n, dtype=np.int32)
    out = ref.attention(q, k, v, pos, 0.125, window, s).reshape(T, 2, d)
    for t in range(T):
        np.testing.assert_array_equal(ref.attention(q[t:t + 1], k, v, pos[t:t + 1], 0.125, window, s)[0],
                                      out[t].reshape(-1))
    # the last query against tests/codegen/ggml_cpu_order.py's loops, written apart from ir/ggml_order.py
    np.testing.assert_array_equal(out[-1].reshape(-1),
                                  ggml_cpu_order.attention(q[-1:], k, v, pos[-1:], 0.125, window, s)[0])


def libm_rope_pairs(x0, x1, theta):
    """ggml's rotate_pairs on one pair with the C library's cosf/sinf, each fma rounded exactly."""
    c, s = ggml_order.cosf(np.array([theta]))[0], ggml_order.sinf(np.array([theta]))[0]
    return exact_fma(x0, c, -f32(x1 * s)), exact_fma(x0, s, f32(x1 * c))


@pytest.mark.parametrize("mode", ["norm", "neox"])
def test_rope_uses_libm_and_the_contracted_rotation(mode):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 2, 16)).astype(f32)
    pos = np.array([5, 700, 4000], np.int32)
    y = ref.rope(x, pos, mode, 16, 10000.0)
    theta_scale = ggml_cpu_order.powf(10000.0, f32(-2.0) / f32(16))        # libm powf, as ggml's rope_f32
    for t, p in enumerate(pos):
        theta = f32(p)
        for i in range(8):
            a, b = (2 * i, 2 * i + 1) if mode == "norm" else (i, i + 8)
            for h in range(2):
                assert (y[t, h, a], y[t, h, b]) == libm_rope_pairs(x[t, h, a], x[t, h, b], theta)
            theta = f32(theta * theta_scale)
    # libm's cosf is not float64 cos rounded: over many angles some differ, so the choice is visible
    angles = rng.uniform(0, 4000, 4000).astype(f32)
    assert (ggml_order.cosf(angles) != np.cos(angles.astype(np.float64)).astype(f32)).any()


def test_gelu_is_ggml_f16_table_on_every_entry():
    """ggml_cpu_init fills its GELU table with ggml_gelu_f32 as GCC compiles it (fmaf(0.044715 x, x, 1)
    inside, libm tanhf; tests/codegen/ggml_cpu_order.py's gelu_table); the reference's gelu gives that
    value for every finite f16 input below the |x| >= 10 bypasses."""
    x = np.arange(65536, dtype=np.uint16).view(np.float16).astype(f32)
    inside = np.isfinite(x) & (np.abs(x) < 10)
    table = ggml_cpu_order.gelu_table()[inside].astype(np.float16)
    np.testing.assert_array_equal(ref.gelu(x[inside][None])[0].astype(np.float16).view(np.uint16),
                                  table.view(np.uint16))
