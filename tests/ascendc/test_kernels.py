"""Every AscendC kernel on every chip (310B, 310P, 910B), run on the CPU emulator against numpy.

The references below are small and local for now; they will move to llmc.ir.reference. Tolerances:
fp32 outputs allow a few fp32 ulps of summation-order noise (rtol 1e-5); fp16 outputs allow one fp16
rounding of the result plus fp32 noise (rtol 2e-3); the matmul allows 1e-5 of sum |w| |x| per row
against x rounded to f16 (the kernel keeps x in UB as f16).
Each kernel source depends only on (op, dtype, chip), so it compiles once per session; hypothesis
varies shapes and data through the tiling struct.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from llmc.codegen.ascendc import kernels as K
from llmc.codegen.ascendc import matmul as MM
from llmc.runtime.ascendc import host_prep
from llmc.runtime.ascendc.launch import compile_kernel, run

CHIPS = [K.ASCEND_310B, K.ASCEND_310P, K.ASCEND_910B]
CHIP_IDS = [c.name for c in CHIPS]
DTYPES = ["float32", "float16"]
EXAMPLES = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- numpy references ----------------------------------------------------------------------------


def ref_rms_norm(x, gamma, eps):
    x64 = x.astype(np.float64)
    scale = 1.0 / np.sqrt((x64 * x64).mean(axis=1, keepdims=True) + eps)
    return x64 * scale * gamma.astype(np.float64)


def ref_rope(x, positions, n_dims, mode, base=10000.0):
    """ggml CPU rope: angles built iteratively in f32, rotation in float64."""
    out = x.astype(np.float64).copy()
    half = n_dims // 2
    theta_scale = np.float32(base) ** np.float32(-2.0 / n_dims)
    for t, p in enumerate(positions):
        theta = np.float32(p)
        for i in range(half):
            c, s = np.cos(np.float64(theta)), np.sin(np.float64(theta))
            a, b = (2 * i, 2 * i + 1) if mode == "norm" else (i, i + half)
            x0, x1 = x[t, :, a].astype(np.float64), x[t, :, b].astype(np.float64)
            out[t, :, a] = x0 * c - x1 * s
            out[t, :, b] = x0 * s + x1 * c
            theta = np.float32(theta * theta_scale)
    return out


def quantize_q8_0(w):
    """ggml reference Q8_0: d = amax / 127, q = round(x / d). Returns (raw blocks, dequantized)."""
    rows, k = w.shape
    b = w.reshape(rows, k // 32, 32).astype(np.float32)
    d = np.abs(b).max(axis=-1) / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    q = np.round(b * inv[..., None]).astype(np.int8)
    d16 = d.astype(np.float16)
    raw = np.concatenate([d16[..., None].view(np.uint8).reshape(rows, k // 32, 2), q.view(np.uint8)], axis=-1)
    return raw, (d16.astype(np.float64)[..., None] * q).reshape(rows, k)


def quantize_q4_0(w):
    """ggml reference Q4_0: d = max / -8, q = clamp(floor(x / d + 8.5), 0, 15); ggml nibble order."""
    rows, k = w.shape
    b = w.reshape(rows, k // 32, 32).astype(np.float32)
    idx = np.abs(b).argmax(axis=-1)
    mx = np.take_along_axis(b, idx[..., None], axis=-1)[..., 0]
    d = mx / -8.0
    inv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1.0), 0.0)
    q = np.clip(np.floor(b * inv[..., None] + 8.5), 0, 15).astype(np.uint8)
    qs = q[..., :16] | (q[..., 16:] << 4)
    d16 = d.astype(np.float16)
    raw = np.concatenate([d16[..., None].view(np.uint8).reshape(rows, k // 32, 2), qs], axis=-1)
    return raw, (d16.astype(np.float64)[..., None] * (q.astype(np.float64) - 8.0)).reshape(rows, k)


def close(got, want, dtype):
    rtol, atol = (1e-5, 1e-6) if dtype == "float32" else (2e-3, 1e-3)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol)


def data(seed, shape, dtype, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


# ---- elementwise ---------------------------------------------------------------------------------

lengths = st.one_of(st.integers(1, 3000), st.sampled_from([72, 8, 4096, 20000]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chip", CHIPS, ids=CHIP_IDS)
@EXAMPLES
@given(n=lengths, seed=st.integers(0, 2**32 - 1))
@example(n=72, seed=0)
@example(n=77, seed=1)
def test_add(chip, dtype, n, seed):
    x, y = data(seed, n, dtype), data(seed + 1, n, dtype)
    # one rounding to the output type, as the vector unit does for half
    np.testing.assert_array_equal(run(K.add(chip, n, dtype), x, y), (x.astype(np.float32) + y).astype(dtype))


# ---- rows ----------------------------------------------------------------------------------------

row_counts = st.integers(1, 40)
col_counts = st.one_of(st.integers(1, 700), st.sampled_from([72, 100, 576, 896, 2880, 4096]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chip", CHIPS, ids=CHIP_IDS)
@EXAMPLES
@given(rows=row_counts, cols=col_counts, seed=st.integers(0, 2**32 - 1))
@example(rows=13, cols=72, seed=0)  # H = 72: 144 bytes per fp16 row -> DataCopyPad / host padding
@example(rows=9, cols=100, seed=1)  # rows not a multiple of 8 cores
def test_rms_norm(chip, dtype, rows, cols, seed):
    x, gamma = data(seed, (rows, cols), dtype), data(seed + 1, cols, dtype)
    close(run(K.rms_norm(chip, rows, cols, 1e-5, dtype), x, gamma), ref_rms_norm(x, gamma, 1e-5), dtype)


# ---- rope ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("chip", CHIPS, ids=CHIP_IDS)
@EXAMPLES
@given(
    tokens=st.integers(1, 12),
    heads=st.integers(1, 6),
    head_dim=st.sampled_from([8, 16, 64, 128]),
    partial=st.booleans(),
    mode=st.sampled_from(["norm", "neox"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_rope(chip, tokens, heads, head_dim, partial, mode, seed):
    n_dims = head_dim // 2 if partial and head_dim >= 16 else head_dim
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((tokens, heads, head_dim)).astype(np.float32)
    positions = rng.integers(0, 4096, size=tokens)
    cos, sin = host_prep.rope_tables(positions, head_dim, n_dims, mode)
    kernel = K.rope(chip, tokens, heads, head_dim, n_dims, mode)
    got = run(kernel, x.reshape(tokens, heads * head_dim), cos, sin).reshape(x.shape)
    np.testing.assert_allclose(got, ref_rope(x, positions, n_dims, mode), rtol=1e-5, atol=1e-5)


# ---- quantized matmul ----------------------------------------------------------------------------

QUANTIZERS = {"q4_0": quantize_q4_0, "q8_0": quantize_q8_0}


def check_matmul(chip, quant, rows, k, tokens, seed, bias=False):
    w, x = data(seed, (rows, k), np.float32), data(seed + 1, (tokens, k), np.float32)
    b = data(seed + 2, rows, np.float32) if bias else np.zeros(rows, np.float32)
    raw, w_deq = QUANTIZERS[quant](w)
    kernel = MM.matmul(chip, quant, rows, k, tokens, bias=bias)
    assert kernel.weight_layout == ("int8" if quant == "q8_0" or not chip.has_shift else "nibbles")
    qs, scales = host_prep.repack(quant, raw, rows, k, kernel.weight_layout)
    got = run(kernel, qs, scales, x, b)
    # x is kept in UB as fp16 (one rounding, docs/ascendc.md §10); the rest is fp32 summation noise
    xh = x.astype(np.float16).astype(np.float64)
    want = xh @ w_deq.T + b
    bound = 1e-5 * (np.abs(xh) @ np.abs(w_deq).T + np.abs(b)) + 1e-6
    assert np.all(np.abs(got - want) <= bound), np.max(np.abs(got - want) - bound)
    return kernel


@pytest.mark.parametrize("quant", ["q4_0", "q8_0"])
@pytest.mark.parametrize("chip", CHIPS, ids=CHIP_IDS)
@EXAMPLES
@given(
    rows=st.integers(1, 300),
    groups=st.one_of(st.integers(1, 40), st.sampled_from([65, 90, 129, 200])),
    tokens=st.one_of(st.just(1), st.integers(2, 9)),
    bias=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@example(rows=37, groups=90, tokens=1, bias=False, seed=0)  # gpt-oss K = 2880: chunks of 64 + 26 groups
@example(rows=24, groups=129, tokens=3, bias=True, seed=1)  # an odd last chunk (1 group) of nibbles
def test_matmul(chip, quant, rows, groups, tokens, bias, seed):
    check_matmul(chip, quant, rows, 32 * groups, tokens, seed, bias)


@pytest.mark.parametrize("chip", CHIPS, ids=CHIP_IDS)
def test_matmul_tiles_real_widths(chip):
    """Qwen2-1.5B's ffn_down (K = n_ff 8960) and a prefill of 16 tokens: K is chunked, so every chip
    tiles it; x of several tokens stays resident while the weights stream."""
    kernel = check_matmul(chip, "q4_0", 40, 8960, 16, seed=3, bias=True)
    assert kernel.tiling_value("chunkGroups") == 64 and kernel.tiling_value("tokenBlock") >= 2
    assert MM.plan_matmul(chip, "q8_0", 1536, 8960, 1)["tokenBlock"] == 1


# ---- codegen properties --------------------------------------------------------------------------


def all_kernels(chip):
    yield K.add(chip, 100, "float16")
    yield K.rms_norm(chip, 3, 72, 1e-6, "float16")
    yield K.rope(chip, 2, 2, 64, 64, "neox")
    yield MM.matmul(chip, "q4_0", 16, 64)
    yield MM.matmul(chip, "q8_0", 16, 64, tokens=4, bias=True)


@pytest.mark.parametrize("chip", CHIPS, ids=CHIP_IDS)
def test_generated_sources_are_clean(chip):
    for kernel in all_kernels(chip):
        src = kernel.source
        assert f'extern "C" __global__ __aicore__ void {kernel.name}(' in src
        assert "TPipe" in src and "BUFFER_NUM = 2" in src and "GetBlockIdx()" in src
        assert "CopyTiling(" in src and src.startswith(f"// {kernel.name}: ")
        for banned in ("printf", "malloc", "std::", "new ", "#include <"):
            assert banned not in src, (kernel.name, banned)
        assert ("DataCopyPad(" in src) == (chip.has_data_copy_pad and kernel.op not in ("rope", "matmul"))
        assert (
            "#ifdef LLMC_ASCEND_REAL" in kernel.host_source
            and "<<<block_dim, nullptr, stream>>>" in kernel.host_source
        )
        assert compile_kernel(kernel).warnings == "", kernel.name  # warning-free with -Wall -Wextra


def test_source_is_shape_independent():
    a, b = K.rms_norm(K.ASCEND_910B, 3, 72), K.rms_norm(K.ASCEND_910B, 1000, 4096)
    assert a.source == b.source and a.tiling != b.tiling


def test_310p_pads_on_the_host_and_splits_rows():
    kernel = K.rms_norm(K.ASCEND_310P, 9, 72, dtype="float16")
    assert kernel.args[0].device_shape == (9, 80) and kernel.block_dim == 5  # 2 rows per core
    assert K.rms_norm(K.ASCEND_310B, 9, 72, dtype="float16").args[0].device_shape == (9, 72)


def test_tiles_fit_each_chip():
    for chip in CHIPS:
        kernel = K.add(chip, 10**7)
        assert kernel.tiling_value("tileLength") * 24 <= chip.ub_bytes
        assert chip.n_cores - 1 <= kernel.block_dim <= chip.n_cores
        assert kernel.tiling_value("tilesPerCore") * kernel.block_dim >= kernel.tiling_value("numTiles")


def test_too_wide_rows_are_refused():
    with pytest.raises(K.AscendCodegenError, match="chunked"):
        K.rms_norm(K.ASCEND_910B, 1, 40000)


def test_matmul_refuses_only_x_beyond_ub():
    MM.matmul(K.ASCEND_910B, "q8_0", 64, 32 * 1400)          # K = 44800: chunked, fits
    with pytest.raises(K.AscendCodegenError, match="one token's x"):
        MM.matmul(K.ASCEND_910B, "q8_0", 64, 32 * 4000)      # 256 KB of fp16 x alone


@pytest.mark.parametrize("chip", CHIPS, ids=CHIP_IDS)
def test_generated_kernels_sync_scalar_reads(chip, capfd):
    """rms_norm and matmul read vector results on the scalar unit: no missing-sync warning (the generated
    pointwise kernels: tests/ascendc/test_pointwise.py)."""
    x = data(0, (9, 100), "float32")
    run(K.rms_norm(chip, 9, 100), x, x[0])
    qs, scales = host_prep.repack("q8_0", quantize_q8_0(data(1, (16, 64), "float32"))[0], 16, 64, "int8")
    run(MM.matmul(chip, "q8_0", 16, 64), qs, scales, x[:1, :64], x[0, :16])
    assert "ascendc-emu" not in capfd.readouterr().err


@pytest.mark.parametrize("quant", ["q4_0", "q8_0"])
@pytest.mark.parametrize("chip", CHIPS, ids=CHIP_IDS)
def test_embed(chip, quant):
    """Rows of a repacked table, dequantized exactly (f16 scale times an int code, in fp32)."""
    vocab, k, tokens = 37, 32 * 45, 6
    raw, w_deq = QUANTIZERS[quant](data(4, (vocab, k), np.float32))
    kernel = MM.embed(chip, quant, vocab, k, tokens)
    qs, scales = host_prep.repack(quant, raw, vocab, k, kernel.weight_layout)
    ids = np.array([0, 36, 5, 5, 17, 2], np.int32)
    np.testing.assert_array_equal(run(kernel, qs, scales, ids), w_deq[ids].astype(np.float32))
