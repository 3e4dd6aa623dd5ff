"""C matmul kernels (codegen/c/matmul.py) against the reference numerics (ir/quant.py).

Every kernel is compiled once per session into one shared library (cffi ABI mode) three times:
with ``-O3 -march=native`` (the SIMD paths of this machine), with plain AVX2 + FMA + F16C (the
maddubs path of machines without VNNI) and with ``-O2`` for plain x86-64 (SSE2 only: the portable
C path). Weights are random values quantized by gguf-py; gguf-py cannot quantize
the K-quants and IQ types, so those are random valid blocks built byte-wise.

Tolerance: per output, |y - y_ref| ≤ 1e-5·Σ_i|w_i||x_i| + 1e-6, with w and x the dequantized
weight and the quantized activation. The activation quantization is reproduced exactly, so the
only difference is f32 summation order (measured ≤ 1.2e-7 relative); one activation code off
by one would cost ~1e-5 relative or more.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cffi
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llmc.codegen.c.matmul import (MATMUL_TYPES, WEIGHT_TYPES_HEADER, function_name, matmul_scratch_bytes,
                                   render_matmul, weight_types_header)
from llmc.ir import quant

from tests.fixtures import weights

RUNTIME_C = Path(__file__).resolve().parents[2] / "runtime" / "c"

CDEF = "typedef struct llmc_threads llmc_threads;\n" + "".join(
    f"void {function_name(t)}(llmc_threads *, float *, const void *, const float *, int, int, int, void *);\n"
    for t in MATMUL_TYPES
) + """
llmc_threads *llmc_threads_create(int n);
void llmc_threads_destroy(llmc_threads *th);
"""

NATIVE_FLAGS = ("-O3", "-march=native")
AVX2_FLAGS = ("-O2", "-march=x86-64", "-mavx2", "-mfma", "-mf16c")   # no VNNI, no AVX-512
PORTABLE_FLAGS = ("-O2", "-march=x86-64")


def build_matmul_library(out_dir: Path, flags: tuple[str, ...],
                         types: tuple[str, ...] = MATMUL_TYPES) -> tuple[cffi.FFI, object]:
    """Render the kernels of `types` (all by default), compile with flags (warnings are errors) and dlopen
    the library (CDEF names every kernel; cffi resolves a function only when it is called)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = [RUNTIME_C / "llmc_threads.c"]
    for t in types:
        path = out_dir / f"{function_name(t)}.c"
        path.write_text(render_matmul(t))
        sources.append(path)

    def compile_one(src: Path) -> Path:
        obj = out_dir / (src.stem + ".o")
        cmd = ["gcc", *flags, "-fPIC", "-Wall", "-Wextra", "-Werror", f"-I{RUNTIME_C}", "-c", str(src), "-o", str(obj)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        objects = list(pool.map(compile_one, sources))
    lib_path = out_dir / "libllmc_matmul.so"
    subprocess.run(["gcc", "-shared", "-o", str(lib_path), *map(str, objects), "-lm", "-lpthread"], check=True)
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    return ffi, ffi.dlopen(str(lib_path))


class Kernels:
    """A compiled kernel library and thread pools (2 threads unless a call asks for another count)."""

    def __init__(self, out_dir: Path, flags: tuple[str, ...]):
        self.ffi, self.lib = build_matmul_library(out_dir, flags)
        self.pools: dict[int, object] = {}

    def pool(self, n_threads: int):
        if n_threads not in self.pools:
            self.pools[n_threads] = self.ffi.gc(self.lib.llmc_threads_create(n_threads), self.lib.llmc_threads_destroy)
        return self.pools[n_threads]

    def matmul(self, ggml_type: str, w_raw: np.ndarray, x: np.ndarray, n_out: int, n_threads: int = 2) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        n_tokens, n_in = x.shape
        y = np.full((n_tokens, n_out), np.nan, dtype=np.float32)
        scratch = np.zeros(max(matmul_scratch_bytes(ggml_type, n_in, n_tokens), 1), dtype=np.uint8)
        w = np.ascontiguousarray(w_raw).view(np.uint8)
        fn = getattr(self.lib, function_name(ggml_type))
        ptr = self.ffi.from_buffer
        fn(self.pool(n_threads), ptr("float[]", y), ptr(w), ptr("float[]", x), n_in, n_out, n_tokens, ptr(scratch))
        return y


@pytest.fixture(scope="session")
def native(tmp_path_factory) -> Kernels:
    return Kernels(tmp_path_factory.mktemp("matmul_native"), NATIVE_FLAGS)


@pytest.fixture(scope="session")
def avx2(tmp_path_factory) -> Kernels:
    return Kernels(tmp_path_factory.mktemp("matmul_avx2"), AVX2_FLAGS)


@pytest.fixture(scope="session")
def portable(tmp_path_factory) -> Kernels:
    return Kernels(tmp_path_factory.mktemp("matmul_portable"), PORTABLE_FLAGS)


def random_weight(ggml_type: str, rng: np.random.Generator, n_in: int, n_out: int) -> np.ndarray:
    """Bytes of a random (n_out, n_in) weight in ggml layout: gguf-py's quantization of random values
    where it has one, random valid blocks (tests/fixtures/weights.py) otherwise."""
    from gguf import GGMLQuantizationType, quants

    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    if ggml_type == "F32":
        return w.view(np.uint8).reshape(-1)
    try:
        q = quants.quantize(w, GGMLQuantizationType[ggml_type])
    except NotImplementedError:     # K-quants and IQ types: gguf-py only dequantizes them
        return weights.random_rows(ggml_type, rng, n_out, n_in, scale=0.01)
    return np.ascontiguousarray(q).view(np.uint8).reshape(-1)


def check_matmul(kernels: Kernels, ggml_type: str, seed: int, n_in: int, n_out: int, n_tokens: int,
                 n_threads: int = 2) -> None:
    rng = np.random.default_rng(seed)
    w_raw = random_weight(ggml_type, rng, n_in, n_out)
    # activations with a few outliers, as after RMSNorm in a real model
    x = rng.standard_normal((n_tokens, n_in)).astype(np.float32)
    x[rng.random(x.shape) < 0.01] *= 20.0
    y = kernels.matmul(ggml_type, w_raw, x, n_out, n_threads)
    y_ref = quant.matmul_reference(w_raw, ggml_type, x, n_in, n_out)
    w = np.abs(quant.dequantize(w_raw, ggml_type, n_in, n_out)).astype(np.float64)
    xq = np.abs(quant.quantize_activations(x, quant.VEC_DOT_TYPE[ggml_type])).astype(np.float64)
    bound = 1e-5 * (xq @ w.T) + 1e-6
    err = np.abs(y.astype(np.float64) - y_ref)
    worst = np.unravel_index(np.argmax(err / bound), err.shape)
    assert np.all(err <= bound), (
        f"{ggml_type} n_in={n_in} n_out={n_out} T={n_tokens}: |Δ|={err[worst]:.3g} > {bound[worst]:.3g} "
        f"at (token, row) {worst}: got {y[worst]}, want {y_ref[worst]}"
    )


def shapes(block: int):
    return st.tuples(
        st.integers(1, 6).map(lambda k: k * block),     # n_in
        st.integers(1, 37),                              # n_out: not a multiple of threads or lanes
        st.integers(1, 9),                               # n_tokens: full tiles of 4 and a tail
        st.integers(0, 2**32 - 1),                       # seed
        st.integers(1, 3),                               # threads
    )


def block_size(ggml_type: str) -> int:
    # float types accept any n_in; use 16 + odd tails to cover the vector remainder loops
    return {"F32": 7, "F16": 7, "BF16": 7}.get(ggml_type, quant.BLOCK_LAYOUT[ggml_type][0])


@pytest.mark.parametrize("ggml_type", MATMUL_TYPES)
def test_native_matches_reference(native: Kernels, ggml_type: str):
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(shapes(block_size(ggml_type)))
    def run(shape):
        n_in, n_out, n_tokens, seed, n_threads = shape
        check_matmul(native, ggml_type, seed, n_in, n_out, n_tokens, n_threads)

    run()


@pytest.mark.parametrize("ggml_type", MATMUL_TYPES)
def test_portable_matches_reference(portable: Kernels, ggml_type: str):
    block = block_size(ggml_type)
    check_matmul(portable, ggml_type, seed=1, n_in=block * 9 if block < 32 else block * 2, n_out=13, n_tokens=6)


@pytest.mark.parametrize("ggml_type", MATMUL_TYPES)
def test_avx2_matches_reference(avx2: Kernels, ggml_type: str):
    block = block_size(ggml_type)
    check_matmul(avx2, ggml_type, seed=2, n_in=block * 9 if block < 32 else block * 3, n_out=11, n_tokens=7)


def test_weight_types_header_is_current():
    """runtime/c/llmc_weight_types.h is what `python -m llmc.codegen.c.matmul` writes from the type table."""
    assert WEIGHT_TYPES_HEADER.read_text() == weight_types_header(), "run python -m llmc.codegen.c.matmul"


def test_every_quantized_type_has_random_blocks():
    for name, t in quant.WEIGHT_TYPES.items():
        assert t.block == 1 or name == "MXFP4" or name in weights.F16_SCALE_FIELDS, name


@pytest.mark.parametrize("ggml_type", ["Q8_0", "Q4_1", "Q5_0", "Q5_1"])
def test_smollm2_shapes(native: Kernels, ggml_type: str):
    """Real layer shapes, decode and a prefill batch."""
    check_matmul(native, ggml_type, seed=7, n_in=576, n_out=1536, n_tokens=1)
    check_matmul(native, ggml_type, seed=8, n_in=1536, n_out=576, n_tokens=9)


@pytest.mark.parametrize("ggml_type", [t for t in MATMUL_TYPES if quant.BLOCK_LAYOUT[t][0] > 1 and t != "MXFP4"])
def test_packed_prefill_edges(native: Kernels, ggml_type: str):
    """The packed prefill path: n_in cut into chunks of 1024 elements with a partial last chunk (n_in
    1056 = 33 blocks of 32; 1280 = 5 blocks of 256), rows not a multiple of 16 (a row-by-row tail),
    tokens not a multiple of 4, 3 threads (21 tokens: activations quantized by the pool)."""
    block = quant.BLOCK_LAYOUT[ggml_type][0]
    check_matmul(native, ggml_type, seed=9, n_in=1056 if block == 32 else 1280, n_out=83, n_tokens=11)
    check_matmul(native, ggml_type, seed=10, n_in=2 * block, n_out=16, n_tokens=8)
    check_matmul(native, ggml_type, seed=11, n_in=3 * block, n_out=53, n_tokens=21, n_threads=3)


@pytest.mark.parametrize("ggml_type", ["Q4_0", "Q5_0", "Q8_0", "Q4_K", "Q6_K", "F16"])
def test_same_result_for_every_thread_count(native: Kernels, ggml_type: str):
    """Bitwise the same output with 1, 2 and 3 threads, decode and packed prefill."""
    block = max(quant.BLOCK_LAYOUT[ggml_type][0], 32)
    rng = np.random.default_rng(12)
    w_raw = random_weight(ggml_type, rng, 4 * block, 83)
    for n_tokens in (1, 13):
        x = rng.standard_normal((n_tokens, 4 * block)).astype(np.float32)
        ys = [native.matmul(ggml_type, w_raw, x, 83, n_threads) for n_threads in (1, 2, 3)]
        assert all(np.array_equal(ys[0], y) for y in ys[1:]), f"{ggml_type} T={n_tokens}"


def test_scratch_sizes():
    assert matmul_scratch_bytes("F32", 576, 3) == 0
    assert matmul_scratch_bytes("Q4_1", 576, 2) == 2 * 18 * 40
    assert matmul_scratch_bytes("Q6_K", 512, 1) == 2 * 292
    with pytest.raises(ValueError):
        matmul_scratch_bytes("Q4_K", 576, 1)


def test_portable_half_conversions(tmp_path):
    """llmc_common.h's portable f32 -> f16 / bf16 rounding matches numpy on every exponent."""
    src = tmp_path / "conv.c"
    src.write_text(
        '#include "llmc_common.h"\n'
        "void to_f16(const float *x, unsigned short *h, int n) {\n"
        "    for (int i = 0; i < n; i++) h[i] = llmc_f32_to_f16(x[i]);\n}\n"
        "void to_bf16(const float *x, unsigned short *h, int n) {\n"
        "    for (int i = 0; i < n; i++) h[i] = llmc_f32_to_bf16(x[i]);\n}\n"
        "void from_f16(const unsigned short *h, float *x, int n) {\n"
        "    for (int i = 0; i < n; i++) x[i] = llmc_f16_to_f32(h[i]);\n}\n"
    )
    lib_path = tmp_path / "conv.so"
    subprocess.run(["gcc", *PORTABLE_FLAGS, "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", f"-I{RUNTIME_C}",
                    str(src), "-o", str(lib_path)], check=True)
    ffi = cffi.FFI()
    ffi.cdef("void to_f16(const float *, unsigned short *, int); void to_bf16(const float *, unsigned short *, int);"
             "void from_f16(const unsigned short *, float *, int);")
    lib = ffi.dlopen(str(lib_path))
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[np.isfinite(x)]
    # dense around the half range, including subnormal halves and round-to-even ties
    x = np.concatenate([x, (rng.standard_normal(100_000) * 10.0 ** rng.integers(-9, 6, 100_000)).astype(np.float32),
                        np.float32(2.0**-24) * np.arange(-2048, 2048, 0.5, dtype=np.float32)])
    h = np.zeros(x.size, np.uint16)
    lib.to_f16(ffi.from_buffer("float[]", x), ffi.from_buffer("unsigned short[]", h), x.size)
    with np.errstate(over="ignore"):
        assert np.array_equal(h, x.astype(np.float16).view(np.uint16))
    back = np.zeros(x.size, np.float32)
    lib.from_f16(ffi.from_buffer("unsigned short[]", h), ffi.from_buffer("float[]", back), x.size)
    assert np.array_equal(back, h.view(np.float16).astype(np.float32))
    lib.to_bf16(ffi.from_buffer("float[]", x), ffi.from_buffer("unsigned short[]", h), x.size)
    assert np.array_equal(h, (quant._round_bf16(x).view(np.uint32) >> 16).astype(np.uint16))
