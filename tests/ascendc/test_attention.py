"""The AscendC KV-cache store and attention kernels (codegen/ascendc/attention.py) on every chip, against
numpy. Reference: llama.cpp's attention as docs/numerics.md §1 describes it -- K and V in f16, q rounded
to f16, softmax in float64 here; the kernel sums in fp32, so rtol 1e-4 and atol 1e-5 (outputs ~1)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmc.codegen.ascendc import attention as A
from llmc.codegen.ascendc import kernels as K
from llmc.runtime.ascendc.launch import run

CHIPS = [K.ASCEND_310B, K.ASCEND_310P, K.ASCEND_910B]
EXAMPLES = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ref_attention(q, kc, vc, rows, sinks, heads, kv_heads, d, ctx, scale, window, softcap):
    out = np.zeros((len(rows), heads * d))
    for t, (seq, pos) in enumerate(rows):
        lo = max(0, pos - window + 1) if window else 0
        for h in range(heads):
            hk = h // (heads // kv_heads)
            qh = q[t, h * d:(h + 1) * d].astype(np.float16).astype(np.float64)
            keys = slice(seq * ctx + lo, seq * ctx + pos + 1)
            s = kc[keys, hk * d:(hk + 1) * d].astype(np.float64) @ qh * scale
            if softcap:
                s = softcap * np.tanh(s / softcap)
            top = max(s.max(), sinks[h]) if sinks is not None else s.max()
            e = np.exp(s - top)
            total = e.sum() + (np.exp(sinks[h] - top) if sinks is not None else 0.0)
            out[t, h * d:(h + 1) * d] = (e / total) @ vc[keys, hk * d:(hk + 1) * d].astype(np.float64)
    return out


@pytest.mark.parametrize("chip", CHIPS, ids=lambda c: c.name)
@EXAMPLES
@given(tokens=st.integers(1, 5), groups=st.sampled_from([(2, 1), (4, 2), (3, 3)]), d=st.sampled_from([16, 64, 128]),
       ctx=st.integers(8, 150), seqs=st.integers(1, 2), window=st.sampled_from([0, 4, 33]),
       softcap=st.sampled_from([0.0, 5.0]), sinks=st.booleans(), seed=st.integers(0, 2**16))
@example(tokens=2, groups=(4, 2), d=64, ctx=130, seqs=1, window=0, softcap=0.0, sinks=True, seed=0)  # 3 key tiles
def test_attention(chip, tokens, groups, d, ctx, seqs, window, softcap, sinks, seed):
    heads, kv_heads = groups
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((tokens, heads * d)).astype(np.float32)
    kc = (rng.standard_normal((seqs * ctx, kv_heads * d)) * 0.5).astype(np.float16)
    vc = rng.standard_normal((seqs * ctx, kv_heads * d)).astype(np.float16)
    rows = np.stack([rng.integers(0, seqs, tokens), rng.integers(0, ctx, tokens)], axis=1).astype(np.int32)
    sink = rng.standard_normal(heads).astype(np.float32)
    scale = 1.0 / np.sqrt(d)
    kernel = A.attention(chip, tokens, heads, kv_heads, d, ctx, seqs, scale, window, softcap, sinks)
    got = run(kernel, q, kc, vc, sink, rows)
    want = ref_attention(q, kc, vc, rows, sink if sinks else None, heads, kv_heads, d, ctx, scale, window, softcap)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("chip", CHIPS, ids=lambda c: c.name)
def test_kv_store_writes_f16_rows_at_their_slots(chip):
    tokens, kv_heads, d, ctx, seqs = 5, 2, 64, 12, 2
    rng = np.random.default_rng(1)
    key, value = (rng.standard_normal((tokens, kv_heads * d)).astype(np.float32) for _ in range(2))
    rows = np.array([[0, 3], [1, 0], [1, 11], [0, 4], [1, 5]], np.int32)
    kc, vc = run(A.kv_store(chip, tokens, kv_heads, d, ctx, seqs), key, value, rows)
    slots = rows[:, 0] * ctx + rows[:, 1]
    np.testing.assert_array_equal(kc[slots], key.astype(np.float16))      # nearest even, as llama.cpp
    np.testing.assert_array_equal(vc[slots], value.astype(np.float16))


def test_attention_refuses_what_it_cannot_tile():
    with pytest.raises(K.AscendCodegenError, match="multiple of 16"):
        A.attention(K.ASCEND_910B, 1, 2, 1, 40, 64)
    with pytest.raises(K.AscendCodegenError, match="online-softmax"):
        A.attention(K.ASCEND_910B, 1, 2, 1, 128, 40000)
