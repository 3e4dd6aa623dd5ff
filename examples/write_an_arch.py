"""Write an architecture in the DSL from the model card, compile it, and check the C kernels against the
numpy reference.

    python examples/write_an_arch.py

The architecture below is Llama as a model card describes it — pre-norm decoder blocks with grouped-query
attention, interleaved (NORM) rope and a SwiGLU feed-forward, the lm head tied to the embedding — written
from scratch in about twenty lines. It binds SmolLM2's GGUF file (the default model; `arch "llama"`
binds the `llama.*` metadata keys and tensor names). The compiled C artifact is then checked against the
numpy reference interpreter (ir/reference.py), the judge every kernel in llmc answers to.

Check a new architecture on weights trained for it: a graph run on weights it was not trained for (say, a
parallel-residual block on SmolLM2) amplifies rounding noise until no two correct implementations agree.
"""
import os
import sys
import tempfile

import llmc
from llmc.agreement import compare_logits
from llmc.compiler.driver import compile_model
from llmc.fetch import smollm2

LLAMA_FROM_THE_MODEL_CARD = '''
arch "llama"                                  # binds llama.* metadata and tensor names

param n_embd    = meta("{arch}.embedding_length")
param n_layer   = meta("{arch}.block_count")
param n_ff      = meta("{arch}.feed_forward_length")
param n_head    = meta("{arch}.attention.head_count")
param n_kv      = meta("{arch}.attention.head_count_kv", n_head)
param d_head    = n_embd / n_head
param eps       = meta("{arch}.attention.layer_norm_rms_epsilon")
param theta     = meta("{arch}.rope.freq_base", 10000.0)
param n_vocab   = ne("token_embd.weight", 1)

weight embedding = "token_embd.weight"  [n_vocab, n_embd]     # also the lm head (tied)
weight final_norm = "output_norm.weight" [n_embd]

input tokens
h = embed(embedding, tokens)                                    # (T, n_embd)

layer i in n_layer {
    weight attn_norm = "blk.{i}.attn_norm.weight"   [n_embd]
    weight w_q = "blk.{i}.attn_q.weight"      [n_head * d_head, n_embd]
    weight w_k = "blk.{i}.attn_k.weight"      [n_kv * d_head, n_embd]
    weight w_v = "blk.{i}.attn_v.weight"      [n_kv * d_head, n_embd]
    weight w_o = "blk.{i}.attn_output.weight" [n_embd, n_head * d_head]
    weight mlp_norm = "blk.{i}.ffn_norm.weight"   [n_embd]
    weight w_1 = "blk.{i}.ffn_gate.weight"    [n_ff, n_embd]
    weight w_3 = "blk.{i}.ffn_up.weight"      [n_ff, n_embd]
    weight w_2 = "blk.{i}.ffn_down.weight"    [n_embd, n_ff]

    a = rms_norm(h, eps=eps) * attn_norm
    q = rope(reshape(linear(a, w_q), shape=[T, n_head, d_head]), positions, mode=norm, n_dims=d_head, base=theta)
    k = rope(reshape(linear(a, w_k), shape=[T, n_kv, d_head]), positions, mode=norm, n_dims=d_head, base=theta)
    v = reshape(linear(a, w_v), shape=[T, n_kv, d_head])
    h = h + linear(attention(q, k, v, scale=1.0 / sqrt(d_head)), w_o)       # grouped-query attention

    m = rms_norm(h, eps=eps) * mlp_norm
    h = h + linear(swiglu(linear(m, w_1), linear(m, w_3)), w_2)            # SwiGLU: silu(w1 m) * w3 m
}

output logits = linear(rms_norm(h, eps=eps) * final_norm, embedding)     # (T, n_vocab)
'''

gguf = smollm2()
with tempfile.TemporaryDirectory() as work:
    arch_file = os.path.join(work, "my_llama.llmc")
    with open(arch_file, "w") as f:
        f.write(LLAMA_FROM_THE_MODEL_CARD)
    artifact = os.path.join(work, "artifact")
    result = compile_model(arch_file, "c", artifact)            # llmc compile my_llama.llmc -o artifact
    print(f"compiled {len(result.graph)} IR nodes in {result.seconds:.1f} s")

    compiled = llmc.load(artifact, gguf, n_ctx=64)
    reference = llmc.load(arch_file, gguf, target="reference", n_ctx=64)
    ids = compiled.tokenize("A compiler turns a program written in one language into another language, "
                           "checking it and making it fast on the way.")
    got, want = compiled.logits(ids), reference.logits(ids)

    # Both quantize activations before quantized matmuls as llama.cpp does, and differ only by rounding
    # and summation order: the project holds that to a median per-position max|diff| of 0.15 x the
    # logits' spread, as for agreement with llama.cpp (llmc/agreement.py).
    agreement = compare_logits(got, want)
    print(f"C vs reference: {agreement}")
    sys.exit(0 if agreement.median_max_abs_over_std <= 0.15 and agreement.top1 >= 0.9 else 1)
