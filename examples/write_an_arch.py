"""Write a new architecture in the DSL and check the compiled C kernels against the numpy reference.

    python examples/write_an_arch.py

The architecture below is a *parallel-residual* llama (the GPT-J / GPT-NeoX block shape): attention and
the feed-forward both read the same normalized input and are added to the residual together, instead of
one after the other. It reads SmolLM2's weights (the default model; arch "llama" binds the `llama.*`
metadata keys), so its text is not meaningful — what we check is that the compiled C artifact computes
exactly what the DSL says, by comparing its logits with the numpy reference interpreter
(ir/reference.py), the judge every kernel in llmc answers to.
"""
import os
import sys
import tempfile

import numpy as np

import llmc
from llmc.compiler.driver import compile_model
from llmc.fetch import smollm2

PARALLEL_LLAMA = '''
arch "llama"                                  # binds llama.* metadata and tensor names

param n_embd    = meta("{arch}.embedding_length")
param n_layer   = meta("{arch}.block_count")
param n_ff      = meta("{arch}.feed_forward_length")
param n_head    = meta("{arch}.attention.head_count")
param n_head_kv = meta("{arch}.attention.head_count_kv", n_head)
param head_dim  = n_embd / n_head
param eps       = meta("{arch}.attention.layer_norm_rms_epsilon")
param rope_base = meta("{arch}.rope.freq_base", 10000.0)
param n_vocab   = ne("token_embd.weight", 1)

weight token_embd  = "token_embd.weight"  [n_vocab, n_embd]
weight output_norm = "output_norm.weight" [n_embd]

input tokens
h = embed(token_embd, tokens)                                   # (T, n_embd)

layer i in n_layer {
    weight attn_norm = "blk.{i}.attn_norm.weight"   [n_embd]
    weight wq        = "blk.{i}.attn_q.weight"      [n_head * head_dim, n_embd]
    weight wk        = "blk.{i}.attn_k.weight"      [n_head_kv * head_dim, n_embd]
    weight wv        = "blk.{i}.attn_v.weight"      [n_head_kv * head_dim, n_embd]
    weight wo        = "blk.{i}.attn_output.weight" [n_embd, n_head * head_dim]
    weight w_gate    = "blk.{i}.ffn_gate.weight"    [n_ff, n_embd]
    weight w_up      = "blk.{i}.ffn_up.weight"      [n_ff, n_embd]
    weight w_down    = "blk.{i}.ffn_down.weight"    [n_embd, n_ff]

    x = rms_norm(h, eps=eps) * attn_norm                        # one norm feeds both branches
    q = rope(reshape(linear(x, wq), shape=[T, n_head, head_dim]), positions, mode=norm, n_dims=head_dim, base=rope_base)
    k = rope(reshape(linear(x, wk), shape=[T, n_head_kv, head_dim]), positions, mode=norm, n_dims=head_dim, base=rope_base)
    v = reshape(linear(x, wv), shape=[T, n_head_kv, head_dim])
    attn = linear(attention(q, k, v, scale=1.0 / sqrt(head_dim)), wo)
    ffn = linear(swiglu(linear(x, w_gate), linear(x, w_up)), w_down)
    h = h + attn + ffn                                          # the parallel residual
}

output logits = linear(rms_norm(h, eps=eps) * output_norm, token_embd)   # tied head, (T, n_vocab)
'''

gguf = smollm2()
with tempfile.TemporaryDirectory() as work:
    arch_file = os.path.join(work, "parallel_llama.llmc")
    with open(arch_file, "w") as f:
        f.write(PARALLEL_LLAMA)
    artifact = os.path.join(work, "artifact")
    result = compile_model(arch_file, "c", artifact)            # llmc compile parallel_llama.llmc -o artifact
    print(f"compiled {len(result.graph)} IR nodes in {result.seconds:.1f} s")

    compiled = llmc.load(artifact, gguf, n_ctx=64)
    reference = llmc.load(arch_file, gguf, target="reference", n_ctx=64)
    ids = compiled.tokenize("A compiler turns a program written in one language into another language, "
                           "checking it and making it fast on the way.")
    got, want = compiled.logits(ids), reference.logits(ids)

    # Both quantize activations before quantized matmuls as llama.cpp does; they differ by rounding and
    # summation order, which the project holds to a median per-position max|diff| of 0.15 x the logits'
    # spread (as for agreement with llama.cpp). A mistake in a kernel or a schedule shows up as ~1 x std.
    spread = float(want.std())
    per_position = np.abs(got - want).max(axis=1) / spread
    same_top1 = float(np.mean(got.argmax(axis=1) == want.argmax(axis=1)))
    print(f"{len(ids)} positions: C vs reference median max|diff| = {np.median(per_position):.3f} x std, "
          f"top-1 agreement {same_top1:.2f}")
    sys.exit(0 if np.median(per_position) <= 0.15 and same_top1 >= 0.8 else 1)
