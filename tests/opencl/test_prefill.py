"""The prefill matmul kernels (matmul_tiled_<type>, matmul_group_tiled_<type>: PREFILL_TILE token rows per
work-item) against llmc.ir.reference and against the one-row kernels, for T = 1..17 token rows (whole
tiles, a partial last tile, fewer rows than one tile).

Tolerance against the reference: f32 summation order only (rtol 1e-5, atol 1e-5 of the largest output).
Against matmul_<type> / matmul_group_<type>: bit for bit, since each row's sum is taken in the same order."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llmc.codegen.opencl import kernels
from llmc.ir import quant

from tests.opencl.test_kernels import _kernel, activations, check_matmul_group, random_weight

f32 = np.float32
TILE = kernels.PREFILL_TILE


@pytest.mark.parametrize("ggml_type", kernels.TILED_TYPES)
@settings(max_examples=6, deadline=None)
@given(rows=st.integers(1, 17), with_bias=st.booleans(), seed=st.integers(0, 1000))
def test_matmul_tiled(ggml_type, rows, with_bias, seed):
    t = ggml_type.lower()
    dev, tiled = _kernel(f"matmul_tiled_{t}", ggml_type)
    _, single = _kernel(f"matmul_{t}", ggml_type)
    rng = np.random.default_rng(seed)
    n_in, n_out = 32 * 7, 21            # 7 blocks: the four-block loop and the tail; 21 = a partial work-group
    w = random_weight(ggml_type, n_out, n_in, rng)
    x = rng.standard_normal((rows, n_in)).astype(f32)
    bias = rng.standard_normal(n_out).astype(f32) if with_bias else None
    want = quant.matmul_reference(w, ggml_type, x, n_in, n_out) + (0 if bias is None else bias)
    xq, xs = activations(ggml_type, x)
    args = [("m", dev.buffer(w)), ("m", dev.buffer(xq)), ("m", dev.buffer(xs)),
            ("m", None if bias is None else dev.buffer(bias)), ("i", n_in), ("i", n_out)]
    y_tiled, y_single = dev.buffer(nbytes=rows * n_out * 4), dev.buffer(nbytes=rows * n_out * 4)
    dev.run(tiled, (24, -(-rows // TILE)), ("m", y_tiled), *args, ("i", rows), local=(8, 1))
    dev.run(single, (24, rows), ("m", y_single), *args, local=(8, 1))
    got = dev.read(y_tiled, (rows, n_out))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    np.testing.assert_array_equal(got, dev.read(y_single, (rows, n_out)))


@pytest.mark.parametrize("ggml_type", kernels.TILED_TYPES)
@settings(max_examples=4, deadline=None)
@given(rows=st.integers(1, 17), seed=st.integers(0, 1000))
def test_matmul_group_tiled(ggml_type, rows, seed):
    """Three members sharing x, starts at whole work-groups of 8, the second without a bias."""
    dev, k = _kernel(f"matmul_group_tiled_{ggml_type.lower()}", ggml_type)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 32 * 5)).astype(f32)
    check_matmul_group(dev, k, ggml_type, x, rng, -(-rows // TILE), ("i", rows))
