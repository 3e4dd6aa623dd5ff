"""C op kernels (codegen/c/kernels.py) against their definitions in llmc.ir.reference.

Every kernel family (every weight type of the typed ones), the matmul kernels moe_matmul calls and
llmc_threads.c are compiled once per session into one shared library with
the model build's flags (codegen/c/build.py CFLAGS) plus ``-Werror`` and called through cffi (ABI mode); the cffi
declarations are read from runtime/c/llmc_kernels.h, so the test and the header cannot drift apart.

Tolerances (relative to the size of the values involved), and why:
- embed, add (the matmul-bias add), gather, top_k: the same float operations as the reference, so 1e-6
  (only an FMA the compiler may contract, e.g. Q4_K's d·q − m, differs), indices exactly;
- weighted_sum: 1e-5 (FMA contraction);
- rope: 1e-5 of the rotated pair's size plus the cost of a one-ulp angle difference (an FMA in the
  YaRN blend, cosf vs numpy's f32 cos): 4·2⁻²⁴·|angle|; without YaRN, exactly ggml's bits
  (tests/codegen/ggml_cpu_order.py: powf, cosf, sinf, the contracted rotation);
- attention: exactly the bits of llama.cpp's one-query order, transcribed in tests/codegen/ggml_cpu_order.py;
- moe_matmul: 1e-5·Σ|w||x| per output as the matmul test (the activation quantization is exact).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cffi
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmc.codegen.c.build import CFLAGS
from llmc.codegen.c.kernels import (KERNELS, function_names, kernels_header, moe_matmul_scratch_bytes,
                                    render_kernel)
from llmc.codegen.c.matmul import MATMUL_TYPES, function_name, render_matmul
from llmc.ir import quant, reference

from tests.codegen import ggml_cpu_order
from tests.fixtures import weights

RUNTIME_C = Path(__file__).resolve().parents[2] / "runtime" / "c"
# the model build's flags (ISO C: no fp contraction the kernels do not write out), warnings as errors
FLAGS = (*(f for f in CFLAGS if f != "-fvisibility=hidden"), "-Werror")
N_THREADS = 2
f32 = np.float32

# A few dozen examples per property keep the whole file well under a minute.
FEW = settings(max_examples=25, deadline=None)


def cdef_from_header(text: str) -> str:
    """llmc_kernels.h without preprocessor lines and the C++ guard, which cffi cannot parse."""
    lines, in_directive = [], False
    for line in text.splitlines():
        directive = in_directive or line.startswith("#")
        in_directive = directive and line.endswith("\\")      # a macro continued on the next line
        if not directive and line.strip() not in ('extern "C" {', "}"):
            lines.append(line)
    return "typedef struct llmc_threads llmc_threads;\n" + "\n".join(lines)


C_TYPES = {"<f4": "float[]", "<i4": "int32_t[]", "<u2": "uint16_t[]", "|u1": "uint8_t[]"}


class Library:
    """Every kernel, compiled into one .so, and a pool of N_THREADS."""

    def __init__(self, out_dir: Path):
        sources = [RUNTIME_C / "llmc_threads.c"]
        units = {f"{function_name(t)}.c": render_matmul(t) for t in MATMUL_TYPES}
        for name, family in KERNELS.items():
            for ggml_type in family.weight_types or (None,):
                unit = f"{name}_{ggml_type.lower()}.c" if ggml_type else f"{name}.c"
                units[unit] = render_kernel(name, ggml_type)
        for file_name, text in units.items():
            (out_dir / file_name).write_text(text)
            sources.append(out_dir / file_name)

        def compile_one(src: Path) -> Path:
            obj = out_dir / (src.stem + ".o")
            cmd = ["gcc", *FLAGS, f"-I{RUNTIME_C}", "-c", str(src), "-o", str(obj)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"
            return obj

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            objects = list(pool.map(compile_one, sources))
        lib_path = out_dir / "libllmc_kernels.so"
        subprocess.run(["gcc", "-shared", "-o", str(lib_path), *map(str, objects), "-lm", "-lpthread"],
                       check=True)
        self.ffi = cffi.FFI()
        self.ffi.cdef(cdef_from_header(kernels_header()) + """
            llmc_threads *llmc_threads_create(int n);
            void llmc_threads_destroy(llmc_threads *th);""")
        self.lib = self.ffi.dlopen(str(lib_path))
        self.pool = self.ffi.gc(self.lib.llmc_threads_create(N_THREADS), self.lib.llmc_threads_destroy)

    def ptr(self, a: np.ndarray | None):
        """A C pointer to a contiguous array's data (NULL for None)."""
        if a is None:
            return self.ffi.NULL
        assert a.flags.c_contiguous
        return self.ffi.from_buffer(C_TYPES[a.dtype.str], a)

    def call(self, fn: str, *args):
        converted = [self.ptr(a) if isinstance(a, np.ndarray) or a is None else a for a in args]
        getattr(self.lib, fn)(*converted)


@pytest.fixture(scope="session")
def lib(tmp_path_factory) -> Library:
    return Library(tmp_path_factory.mktemp("c_kernels"))


def seeds():
    return st.integers(0, 2**32 - 1)


def assert_close(y: np.ndarray, ref: np.ndarray, rel: float, scale: np.ndarray | float | None = None):
    """|y - ref| <= rel * scale elementwise, scale defaulting to max(|ref|, tiny)."""
    scale = np.maximum(np.abs(ref), 1e-30) if scale is None else scale
    err = np.abs(y.astype(np.float64) - ref.astype(np.float64))
    bad = err > rel * scale
    assert not bad.any(), f"{bad.sum()} of {bad.size} off; worst {err.max():.3g} (rel {rel})"


# ---- weights in ggml layout --------------------------------------------------------------------------

random_rows = weights.random_rows


def block_sizes(ggml_type: str):
    """Row lengths to try: 1..3 blocks (at least 32 elements for the float types)."""
    block = quant.BLOCK_LAYOUT[ggml_type][0]
    return st.integers(1, 3).map(lambda b: b * max(block, 32)) if block > 1 else st.integers(1, 70)


# ---- embedding ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ggml_type", MATMUL_TYPES)
@FEW
@given(data=st.data(), seed=seeds())
def test_embed(lib, ggml_type, data, seed):
    rng = np.random.default_rng(seed)
    n_embd = data.draw(block_sizes(ggml_type))
    vocab = data.draw(st.integers(1, 9))
    tokens = rng.integers(0, vocab, size=data.draw(st.integers(1, 6))).astype(np.int32)
    raw = random_rows(ggml_type, rng, vocab, n_embd)
    y = np.full((len(tokens), n_embd), np.nan, f32)
    lib.call(function_names("embed", ggml_type)[0], y, raw, tokens, len(tokens), n_embd)
    table = quant.dequantize(raw, ggml_type, n_embd, vocab)
    ref = reference.embed(table, tokens)
    assert_close(y, ref, 1e-6, scale=np.abs(ref).max() + 1e-30)


# ---- elementwise ----------------------------------------------------------------------------------------

shapes = st.tuples(st.integers(1, 5), st.integers(1, 70))


@FEW
@given(shape=shapes, broadcast=st.booleans(), seed=seeds())
def test_bias_add(lib, shape, broadcast, seed):
    """llmc_add_f32, the host's matmul-bias add (elementwise ops are generated: test_c_pointwise.py)."""
    rng = np.random.default_rng(seed)
    rows, n = shape
    a = rng.standard_normal((rows, n)).astype(f32)
    b = rng.standard_normal((1 if broadcast else rows, n)).astype(f32)
    y = np.empty_like(a)
    lib.call("llmc_add_f32", y, a, b, rows, n, b.shape[0])
    assert_close(y, reference.add(a, b), 1e-6, scale=np.abs(a) + np.abs(b))


# ---- rope -----------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(mode=st.sampled_from(["norm", "neox"]), yarn=st.booleans(), head_dim=st.sampled_from([8, 32, 64, 80]),
       dims_cut=st.sampled_from([0, 0, 4, 16]), n_heads=st.integers(1, 4), n_tokens=st.integers(1, 5),
       base=st.sampled_from([10000.0, 150000.0, 1e6]), factors=st.booleans(), seed=seeds())
def test_rope(lib, mode, yarn, head_dim, dims_cut, n_heads, n_tokens, base, factors, seed):
    rng = np.random.default_rng(seed)
    n_dims = max(2, head_dim - dims_cut)
    x = rng.standard_normal((n_tokens, n_heads, head_dim)).astype(f32)
    pos = rng.integers(0, 3000, size=n_tokens).astype(np.int32)
    yarn_args = dict(freq_scale=1 / 32, ext_factor=1.0, attn_factor=1.0, beta_fast=32.0, beta_slow=1.0,
                     n_ctx_orig=4096) if yarn else {}
    # Llama 3.x rope_freqs: per-pair divisors of the angle, 1..8 so that ignoring them cannot pass
    freq_factors = rng.uniform(1.0, 8.0, n_dims // 2).astype(f32) if factors else None
    ref = reference.rope(x, pos, mode, n_dims, base, freq_factors=freq_factors, **yarn_args)

    no_yarn = dict(freq_scale=1.0, ext_factor=0.0, attn_factor=1.0, beta_fast=32.0, beta_slow=1.0,
                   n_ctx_orig=0)
    params = lib.ffi.new("llmc_rope_params *", {
        "mode": 0 if mode == "norm" else 2, "n_dims": n_dims, "base": base, **no_yarn, **yarn_args})
    y = x.copy()
    lib.call("llmc_rope_f32", y, pos, n_tokens, n_heads, head_dim, params, freq_factors)

    # a one-ulp angle difference moves the result by ~|x| * ulp(angle); pos bounds every angle
    pair = np.sqrt((x ** 2).sum(axis=-1, keepdims=True))
    mscale = 1 + 0.1 * np.log(32) if yarn else 1.0
    angle_err = 4 * 2.0 ** -24 * np.maximum(pos, 1)[:, None, None]
    assert_close(y, ref, 1.0, scale=pair * mscale * (1e-5 + angle_err))
    np.testing.assert_array_equal(y[..., n_dims:], x[..., n_dims:])
    if not yarn:         # ggml's own angles, cosf, sinf and contracted rotation: the same bits
        np.testing.assert_array_equal(y, ggml_cpu_order.rope(x, pos, mode, n_dims, base, freq_factors))
        np.testing.assert_array_equal(y, ref)


def test_rope_theta_scale_is_powf(lib):
    """Head sizes whose theta_scale differs between ggml's powf(base, -2.0f/n_dims) and the double pow
    rounded to float (checked below), so that the angles, and the bits, differ from pair 1 on."""
    rng = np.random.default_rng(2)
    for base, n_dims in ((10000.0, 24), (500000.0, 40), (1e6, 112), (150000.0, 120)):
        assert ggml_cpu_order.powf(base, f32(-2.0) / f32(n_dims)) != f32(math.pow(base, -2.0 / n_dims))
        x = rng.standard_normal((3, 2, n_dims)).astype(f32)
        pos = np.array([1, 700, 2999], np.int32)
        params = lib.ffi.new("llmc_rope_params *", {"mode": 2, "n_dims": n_dims, "base": base, "freq_scale": 1.0,
                                                     "ext_factor": 0.0, "attn_factor": 1.0, "beta_fast": 32.0,
                                                     "beta_slow": 1.0, "n_ctx_orig": 0})
        y = x.copy()
        lib.call("llmc_rope_f32", y, pos, 3, 2, n_dims, params, None)
        np.testing.assert_array_equal(y, ggml_cpu_order.rope(x, pos, "neox", n_dims, base))
        np.testing.assert_array_equal(y, reference.rope(x, pos, "neox", n_dims, base))


# ---- attention ------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(n_head_kv=st.integers(1, 3), group=st.sampled_from([1, 2, 4]), head_dim=st.sampled_from([4, 16, 64]),
       n_tokens=st.lists(st.integers(0, 4), min_size=1, max_size=3).filter(any),
       starts=st.lists(st.integers(0, 40), min_size=3, max_size=3), window=st.sampled_from([0, 0, 1, 5, 16]),
       use_sinks=st.booleans(), logit_cap=st.sampled_from([0.0, 0.0, 0.5, 3.0]), seed=seeds())
def test_attention(lib, n_head_kv, group, head_dim, n_tokens, starts, window, use_sinks, logit_cap, seed):
    """A batch of tokens from several sequences (n_tokens[s] of sequence s from position starts[s]), in
    shuffled order: each attends to its own sequence's cache only."""
    check_attention(lib, n_head_kv, group, head_dim, n_tokens, starts, window, use_sinks, logit_cap, seed)


@FEW
@given(n_head_kv=st.integers(1, 2), group=st.sampled_from([1, 3, 20]), head_dim=st.sampled_from([4, 64, 80]),
       n_tokens=st.lists(st.integers(0, 3), min_size=1, max_size=2).filter(any),
       starts=st.lists(st.integers(60, 300), min_size=2, max_size=2), window=st.sampled_from([0, 0, 100]),
       use_sinks=st.booleans(), logit_cap=st.sampled_from([0.0, 0.0, 3.0]), seed=seeds())
def test_attention_long_rows(lib, n_head_kv, group, head_dim, n_tokens, starts, window, use_sinks, logit_cap, seed):
    """Rows of 60..300 keys span several of the kernel's 64-key tiles, so the running max and sum are
    rescaled between tiles; group 20 splits the query heads of a KV head over two items (16 at most)."""
    check_attention(lib, n_head_kv, group, head_dim, n_tokens, starts, window, use_sinks, logit_cap, seed)


def check_attention(lib, n_head_kv, group, head_dim, n_tokens, starts, window, use_sinks, logit_cap, seed):
    rng = np.random.default_rng(seed)
    n_head, n_seq = n_head_kv * group, len(n_tokens)
    n_ctx = max(p + n for p, n in zip(starts, n_tokens)) + int(rng.integers(0, 4))
    seq = np.array([s for s, n in enumerate(n_tokens) for _ in range(n)], np.int32)
    positions = np.array([starts[s] + i for s, n in enumerate(n_tokens) for i in range(n)], np.int32)
    order = rng.permutation(len(seq))
    seq, positions, T = seq[order], positions[order], len(seq)
    q = rng.standard_normal((T, n_head, head_dim)).astype(f32)
    k_new, v_new = rng.standard_normal((2, T, n_head_kv, head_dim)).astype(f32)
    # earlier steps' keys and values are already in the caches; rows past the step hold junk
    k_cache = rng.standard_normal((n_seq, n_ctx, n_head_kv, head_dim)).astype(np.float16)
    v_cache = rng.standard_normal((n_seq, n_ctx, n_head_kv, head_dim)).astype(np.float16)
    sinks = rng.standard_normal(n_head).astype(f32) * 2 if use_sinks else None
    scale = float(1 / np.sqrt(head_dim))

    expected_k, expected_v = k_cache.copy(), v_cache.copy()
    expected_k[seq, positions] = k_new.astype(np.float16)
    expected_v[seq, positions] = v_new.astype(np.float16)
    ref = np.empty((T, n_head * head_dim), f32)
    for t in range(T):
        keys = slice(0, positions[t] + 1)
        ref[t] = ggml_cpu_order.attention(q[t:t + 1], expected_k[seq[t], keys].astype(f32),
                                          expected_v[seq[t], keys].astype(f32), positions[t:t + 1], scale,
                                          window, sinks, logit_cap)

    out = np.full((T, n_head * head_dim), np.nan, f32)
    lib.call("llmc_attention_f32", lib.pool, out, q, k_new, v_new, k_cache.view(np.uint16),
             v_cache.view(np.uint16), seq, positions, T, n_head, n_head_kv, head_dim, n_ctx, scale, window, logit_cap,
             sinks)
    np.testing.assert_array_equal(k_cache, expected_k)
    np.testing.assert_array_equal(v_cache, expected_v)
    np.testing.assert_array_equal(out, ref)


def test_attention_rows_of_every_length(lib):
    """Gemma 3's shape (head_dim 256, 4 query heads on 1 KV head) and SmolLM2's (64, 3 on 1), every row length
    around the 16-key softmax chunks and 64-key P·V steps, with and without a window that cuts them; all
    rows in one call (whole rows per item), and each alone (decode: rows over 256 keys split over threads);
    equal to the numpy transcription and to reference.attention."""
    rng = np.random.default_rng(1)
    for head_dim, n_head, window in ((256, 4, 0), (256, 4, 37), (64, 3, 0), (64, 3, 300)):
        positions = np.array([0, 1, 14, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 257, 300, 519], np.int32)
        T, n_ctx = len(positions), 520
        seq = np.arange(T, dtype=np.int32)               # one sequence per token: each sees only its own row
        q = rng.standard_normal((T, n_head, head_dim)).astype(f32)
        k_new, v_new = rng.standard_normal((2, T, 1, head_dim)).astype(f32)
        k_cache, v_cache = rng.standard_normal((2, T, n_ctx, 1, head_dim)).astype(np.float16)
        together = np.full((T, n_head * head_dim), np.nan, f32)
        lib.call("llmc_attention_f32", lib.pool, together, q, k_new, v_new, k_cache.view(np.uint16),
                 v_cache.view(np.uint16), seq, positions, T, n_head, 1, head_dim, n_ctx, 0.0625, window, 0.0, None)
        for t in range(T):
            alone = np.full((1, n_head * head_dim), np.nan, f32)
            lib.call("llmc_attention_f32", lib.pool, alone, q[t:t + 1], k_new[t:t + 1], v_new[t:t + 1],
                     k_cache.view(np.uint16), v_cache.view(np.uint16), seq[t:t + 1], positions[t:t + 1], 1, n_head, 1,
                     head_dim, n_ctx, 0.0625, window, 0.0, None)
            keys = slice(0, positions[t] + 1)
            want = ggml_cpu_order.attention(q[t:t + 1], k_cache[t, keys].astype(f32), v_cache[t, keys].astype(f32),
                                            positions[t:t + 1], 0.0625, window, None)
            np.testing.assert_array_equal(together[t:t + 1], want, err_msg=f"head_dim {head_dim} position {positions[t]}")
            np.testing.assert_array_equal(alone, want, err_msg=f"alone: head_dim {head_dim} position {positions[t]}")
            # the reference computes the same order (ir/ggml_order.py): the same bits
            ref = reference.attention(q[t:t + 1], k_cache[t, keys].astype(f32), v_cache[t, keys].astype(f32),
                                      positions[t:t + 1], 0.0625, window, None)
            np.testing.assert_array_equal(alone, ref, err_msg=f"reference: head_dim {head_dim} position {positions[t]}")


def test_attention_same_bits_alone_or_in_a_batch(lib):
    """A decode token with a long row (its keys split over threads: split rows) gives the same bits as the same
    token inside a large batch (whole rows per item): serving must not depend on who shares the step."""
    rng = np.random.default_rng(3)
    n_head_kv, group, d, n_ctx, pos = 3, 3, 64, 1100, 1030
    n_head = n_head_kv * group
    q = rng.standard_normal((1, n_head, d)).astype(f32)
    kv = rng.standard_normal((2, 1, n_head_kv, d)).astype(f32)
    cache = rng.standard_normal((2, 2, n_ctx, n_head_kv, d)).astype(np.float16).view(np.uint16)  # K, V; 2 seqs
    sinks = rng.standard_normal(n_head).astype(f32)

    def run(n_tokens):
        """Token 0 at position pos of sequence 0, then n_tokens - 1 tokens of sequence 1."""
        positions = np.array([pos] + list(range(pos - n_tokens + 1, pos)), np.int32)
        seq = np.array([0] + [1] * (n_tokens - 1), np.int32)
        qs = np.concatenate([q, rng.standard_normal((n_tokens - 1, n_head, d)).astype(f32)])
        ks, vs = (np.concatenate([x, rng.standard_normal((n_tokens - 1, n_head_kv, d)).astype(f32)]) for x in kv)
        kc, vc = cache[0].copy(), cache[1].copy()
        out = np.empty((n_tokens, n_head * d), f32)
        lib.call("llmc_attention_f32", lib.pool, out, qs, ks, vs, kc, vc, seq, positions,
                 n_tokens, n_head, n_head_kv, d, n_ctx, 0.125, 0, 0.0, sinks)
        return out[0]

    alone, batched = run(1), run(16)
    assert np.isfinite(alone).all()
    np.testing.assert_array_equal(alone, batched)


def test_attention_in_place(lib):
    """out may alias q (same (n_tokens, n_head, head_dim) layout)."""
    rng = np.random.default_rng(0)
    n_tokens, n_head, n_head_kv, d, n_ctx = 3, 4, 2, 16, 8
    q = rng.standard_normal((n_tokens, n_head, d)).astype(f32)
    k_new, v_new = rng.standard_normal((2, n_tokens, n_head_kv, d)).astype(f32)
    caches = [np.zeros((2, n_ctx, n_head_kv, d), np.uint16) for _ in range(2)]
    separate = np.empty((n_tokens, n_head * d), f32)
    in_place = q.copy()
    seq, positions = np.zeros(n_tokens, np.int32), np.arange(2, 2 + n_tokens, dtype=np.int32)
    for out, q_in, (kc, vc) in ((separate, q, caches[0]), (in_place, in_place, caches[1])):
        lib.call("llmc_attention_f32", lib.pool, out, q_in, k_new, v_new, kc, vc, seq, positions, n_tokens, n_head,
                 n_head_kv, d, n_ctx, 0.25, 0, 0.0, None)
    np.testing.assert_array_equal(in_place.reshape(separate.shape), separate)


# ---- mixture of experts ---------------------------------------------------------------------------------

@FEW
@given(rows=st.integers(1, 4), n=st.integers(1, 40), data=st.data(), seed=seeds())
def test_top_k_gather(lib, rows, n, data, seed):
    rng = np.random.default_rng(seed)
    k = data.draw(st.integers(1, n))
    # few distinct values, so ties are common
    x = rng.integers(-3, 4, size=(rows, n)).astype(f32) * f32(0.5)
    idx = np.full((rows, k), -1, np.int32)
    lib.call("llmc_top_k_f32", idx, x, rows, n, k)
    np.testing.assert_array_equal(idx, reference.top_k(x, k))
    y = np.empty((rows, k), f32)
    lib.call("llmc_gather_f32", y, x, idx, rows, n, k)
    np.testing.assert_array_equal(y, reference.gather(x, idx))


@FEW
@given(n_tokens=st.integers(1, 4), k=st.integers(1, 5), n=st.integers(1, 70), seed=seeds())
def test_weighted_sum(lib, n_tokens, k, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_tokens, k, n)).astype(f32)
    w = rng.random((n_tokens, k)).astype(f32)
    y = np.empty((n_tokens, n), f32)
    lib.call("llmc_weighted_sum_f32", y, x, w, n_tokens, k, n)
    assert_close(y, reference.weighted_sum(x, w), 1e-5, scale=(np.abs(x) * w[..., None]).sum(axis=1))


@pytest.mark.parametrize("ggml_type", MATMUL_TYPES)
@settings(max_examples=8, deadline=None)
@given(n_tokens=st.integers(1, 3), k=st.integers(1, 3), n_out=st.integers(1, 12), x_per_slot=st.booleans(),
       use_bias=st.booleans(), data=st.data(), seed=seeds())
def test_moe_matmul(lib, ggml_type, n_tokens, k, n_out, x_per_slot, use_bias, data, seed):
    rng = np.random.default_rng(seed)
    block = quant.BLOCK_LAYOUT[quant.VEC_DOT_TYPE[ggml_type]][0]
    n_in = data.draw(st.integers(1, 2)) * max(block, quant.BLOCK_LAYOUT[ggml_type][0], 32)
    n_experts = data.draw(st.integers(k, 5))
    w_raw = random_rows(ggml_type, rng, n_experts * n_out, n_in)
    sel = np.stack([rng.permutation(n_experts)[:k] for _ in range(n_tokens)]).astype(np.int32)
    x = rng.standard_normal((n_tokens, k, n_in) if x_per_slot else (n_tokens, n_in)).astype(f32)
    bias = rng.standard_normal((n_experts, n_out)).astype(f32) if use_bias else None

    y = np.full((n_tokens, k, n_out), np.nan, f32)
    scratch = np.zeros(max(moe_matmul_scratch_bytes(ggml_type, n_in), 1), np.uint8)
    lib.call(function_names("moe_matmul", ggml_type)[0], lib.pool, y, w_raw, x, int(x_per_slot), sel, bias,
             n_in, n_out, n_tokens, k, scratch)

    w = quant.dequantize(w_raw, ggml_type, n_in, n_experts * n_out).reshape(n_experts, n_out, n_in)
    xs = np.broadcast_to(x[:, None, :], (n_tokens, k, n_in)) if not x_per_slot else x
    xq = quant.quantize_activations(xs.reshape(-1, n_in), quant.VEC_DOT_TYPE[ggml_type]).reshape(xs.shape)
    size = np.einsum("tji,tjoi->tjo", np.abs(xq), np.abs(w[sel])) + 1e-30
    if quant.VEC_DOT_TYPE[ggml_type] == "Q8_1":
        # Q4_1 and Q5_1 multiply the block minimum by Q8_1's f16 sum s (quant.matmul_reference), which
        # reference.matmul's dequantized product does not model: compare with the exact definition
        ref = np.stack([np.stack([quant.matmul_reference(
            w_raw.reshape(n_experts, -1)[sel[t, j]], ggml_type, xs[t, j], n_in, n_out)[0]
            for j in range(k)]) for t in range(n_tokens)])
        ref = ref + (bias[sel] if bias is not None else 0)
    else:
        ref = reference.moe_matmul(x, w, sel, bias, ggml_type)
    assert_close(y, ref, 1e-5, scale=size + (np.abs(bias[sel]) if bias is not None else 0))


# ---- codegen --------------------------------------------------------------------------------------------

def test_header_declares_every_kernel():
    declared = set(re.findall(r"\b(llmc_\w+)\(", kernels_header()))
    for name, family in KERNELS.items():
        for ggml_type in family.weight_types or (None,):
            assert set(function_names(name, ggml_type)) <= declared, name


def test_render_rejects_bad_types():
    with pytest.raises(ValueError, match="needs a weight type"):
        render_kernel("embed")
    with pytest.raises(ValueError, match="takes no weight type"):
        render_kernel("rope", "Q8_0")
    with pytest.raises(ValueError, match="no C kernel family"):
        render_kernel("conv2d")
