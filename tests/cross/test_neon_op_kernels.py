"""tests/codegen/test_c_kernels.py's property tests of the op kernels (attention with its NEON f16 dot
products, bias add, rope, embed, top-k, MoE, ...), run unchanged against the aarch64 build under qemu:
every test there that takes the `lib` fixture is collected here too, with `lib` replaced by
tests/cross/kernel_rpc.py's library. Same tolerances as there. (The elementwise and row ops are generated
per model from ir/pointwise.py; test_pointwise_qemu.py runs their tests under qemu.)"""
from __future__ import annotations

import inspect

import pytest

from tests.codegen import test_c_kernels as _host
from tests.cross.kernel_rpc import QemuKernelLibrary

HOST_TESTS = {name: fn for name, fn in vars(_host).items()
              if name.startswith("test_") and "lib" in inspect.signature(fn).parameters}
globals().update(HOST_TESTS)


def test_host_tests_are_collected():
    assert {"test_attention", "test_attention_in_place", "test_embed", "test_moe_matmul"} <= set(HOST_TESTS)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    library = QemuKernelLibrary(tmp_path_factory.mktemp("aarch64-kernels"))
    yield library
    library.close()


def test_f16_conversions_match_numpy(lib):
    """ARMv8's fcvt (llmc_common.h on aarch64) against numpy: every half to f32 through the F16 embedding,
    and f32 to half (round to nearest even, subnormals, overflow, ties) through attention's KV cache store."""
    import numpy as np

    halves = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    y = np.full(65536, np.nan, np.float32)
    lib.call("llmc_embed_f16", y, halves, np.zeros(1, np.int32), 1, 65536)
    want = halves.view(np.float16).astype(np.float32)
    not_nan = ~np.isnan(want)
    np.testing.assert_array_equal(y[not_nan].view(np.uint32), want[not_nan].view(np.uint32))
    assert np.isnan(y[~not_nan]).all()

    rng = np.random.default_rng(0)
    d = 4096
    bits = rng.integers(0x33000000, 0x47800000, size=d, dtype=np.uint32)        # 2^-25 .. 2^16: all cases
    bits[:256] = (np.arange(256, dtype=np.uint32) << 13) + 0x38000000 + 0x1000   # exact ties of normal halves
    k_new = (bits.view(np.float32) * np.where(rng.random(d) < 0.5, -1, 1)).astype(np.float32).reshape(1, 1, d)
    k_cache = np.zeros((1, 1, 1, d), np.uint16)
    v_cache = np.zeros((1, 1, 1, d), np.uint16)
    out = np.zeros((1, d), np.float32)
    lib.call("llmc_attention_f32", lib.pool, out, np.ones((1, 1, d), np.float32), k_new, k_new.copy(), k_cache,
             v_cache, np.zeros(1, np.int32), np.zeros(1, np.int32), 1, 1, 1, d, 1, 1.0, 0, 0.0, None)
    np.testing.assert_array_equal(k_cache.reshape(-1), k_new.reshape(-1).astype(np.float16).view(np.uint16))
