"""A parallel-residual llama (attention and FFN read the same normed x; h = h + attn + ffn) compiled for
C computes the reference's logits.

The graph shape is one the shipped archs don't have: x feeds five matmuls (q, k, v, gate, up) and stays
alive across attention, and h is read only at the end of the layer. A memory plan that reuses x's or h's
slot too early, or a fused or grouped kernel that writes over a value still to be read, gives O(1)
differences here.

Every weight is F32, so no activation is quantized: the targets differ only in summation order (the
reference sums matmuls in double), measured at ~1e-6 x std; the bound 1e-3 x std is far above that and
far below a wrong buffer. (With quantized weights a parallel-residual graph run on weights trained for the
sequential one, e.g. SmolLM2 Q4_1, amplifies the Q8_1 rounding of activations that differ by one ulp to
~1-3 x std between any two correct implementations, the reference against itself included, so such
files cannot test this.)
"""
import numpy as np

import llmc
from llmc.compiler.driver import compile_model
from tests.fixtures.models import fixture_tokens

PARALLEL_LLAMA = """
arch "llama"
param n_embd    = meta("{arch}.embedding_length")
param n_layer   = meta("{arch}.block_count")
param n_ff      = meta("{arch}.feed_forward_length")
param n_head    = meta("{arch}.attention.head_count")
param n_head_kv = meta("{arch}.attention.head_count_kv")
param head_dim  = n_embd / n_head
param eps       = meta("{arch}.attention.layer_norm_rms_epsilon")
param rope_base = meta("{arch}.rope.freq_base")
param n_vocab   = ne("token_embd.weight", 1)

weight token_embd  = "token_embd.weight"  [n_vocab, n_embd]
weight output_norm = "output_norm.weight" [n_embd]
weight lm_head     = "output.weight"      [n_vocab, n_embd]

input tokens
h = embed(token_embd, tokens)

layer i in n_layer {
    weight attn_norm = "blk.{i}.attn_norm.weight"   [n_embd]
    weight wq        = "blk.{i}.attn_q.weight"      [n_head * head_dim, n_embd]
    weight wk        = "blk.{i}.attn_k.weight"      [n_head_kv * head_dim, n_embd]
    weight wv        = "blk.{i}.attn_v.weight"      [n_head_kv * head_dim, n_embd]
    weight wo        = "blk.{i}.attn_output.weight" [n_embd, n_head * head_dim]
    weight w_gate    = "blk.{i}.ffn_gate.weight"    [n_ff, n_embd]
    weight w_up      = "blk.{i}.ffn_up.weight"      [n_ff, n_embd]
    weight w_down    = "blk.{i}.ffn_down.weight"    [n_embd, n_ff]

    x = rms_norm(h, eps=eps) * attn_norm
    q = rope(reshape(linear(x, wq), shape=[T, n_head, head_dim]), positions, mode=norm, n_dims=head_dim, base=rope_base)
    k = rope(reshape(linear(x, wk), shape=[T, n_head_kv, head_dim]), positions, mode=norm, n_dims=head_dim, base=rope_base)
    v = reshape(linear(x, wv), shape=[T, n_head_kv, head_dim])
    attn = linear(attention(q, k, v, scale=1.0 / sqrt(head_dim)), wo)
    ffn = linear(swiglu(linear(x, w_gate), linear(x, w_up)), w_down)
    h = h + attn + ffn
}

output logits = linear(rms_norm(h, eps=eps) * output_norm, lm_head)
"""


def test_parallel_residual_llama_matches_the_reference(tmp_path, llama_f32_path):
    arch = tmp_path / "parallel_llama.llmc"
    arch.write_text(PARALLEL_LLAMA)
    compile_model(str(arch), "c", str(tmp_path / "c"))
    c = llmc.load(str(tmp_path / "c"), llama_f32_path, n_ctx=64, n_batch=8)
    ref = llmc.load(str(arch), llama_f32_path, target="reference", n_ctx=64)
    ids = fixture_tokens(c.n_vocab, 20, seed=4)          # 20 > n_batch: prefill runs in chunks
    want = ref.logits(ids)
    np.testing.assert_allclose(c.logits(ids), want, rtol=0, atol=1e-3 * want.std())
