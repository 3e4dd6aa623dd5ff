"""AscendC attention kernels: the KV-cache store and causal GQA attention over it (docs/ascendc.md §14).

The caches live in device memory as f16 (llama.cpp's default K/V type), (seqs, ctx, kvHeads, headDim) per
layer. Each step, ``kv_store`` writes the step's K (after rope) and V rows at their (sequence, position)
slots, then ``attention`` runs every (token, query head) against the keys its token sees: positions
[pos - window + 1, pos] of its own sequence (window 0: [0, pos]), so no mask is materialised. The
(sequence, position) of each token travels in a small int32 device array ``rows`` (tokens, 2) uploaded
once per step, so the tiling never depends on the position and stays cached across decode steps.

Numerics (docs/numerics.md §1): q rounded to f16, products and sums in fp32, softmax in fp32 (the sink,
gpt-oss's per-head logit, joins the max and the denominator), weights kept in fp32 for the V sum.
The tiling mirrors PlanAttention / PlanKvStore in templates/llmc_ascend.cpp.j2.
"""
from __future__ import annotations

from .kernels import (BUFFER_NUM, PREFIX, AscendChip, AscendCodegenError, AscendKernel, KernelArg, TilingField,
                      _ceil_div, _render, _round_up, _spec, _split)

KEY_TILES = (64, 32, 16, 8)     # keys per K/V tile, the largest that fits UB beside the score row
MAX_KEY_TILE = KEY_TILES[0]


def attention_ub_bytes(head_dim: int, key_tile: int, score_cap: int) -> int:
    """UB bytes of attention.cpp.j2's buffers, in Init's order."""
    d = head_dim
    work = _round_up(_ceil_div(score_cap, 64), 8) * 4
    return (d * 4 + BUFFER_NUM * key_tile * d * 2 + d * 4 + d * 2 + 2 * key_tile * d * 4 + key_tile * 4
            + 2 * score_cap * 4 + work + 16 * 4 + d * 4)


def plan_attention(chip: AscendChip, tokens: int, heads: int, kv_heads: int, head_dim: int, ctx: int,
                   seqs: int = 1) -> dict:
    if min(tokens, heads, kv_heads, head_dim, ctx, seqs) < 1 or heads % kv_heads:
        raise AscendCodegenError(f"attention: {heads} query heads over {kv_heads} KV heads, {tokens} tokens, "
                                 f"n_ctx {ctx}: every size positive and heads a multiple of kv_heads")
    if head_dim % 16:
        raise AscendCodegenError(f"attention: head_dim {head_dim} is not a multiple of 16 (f16 cache rows must "
                                 "be whole 32-byte blocks)")
    score_cap = _round_up(ctx, 64)
    key_tile = next((j for j in KEY_TILES if attention_ub_bytes(head_dim, j, score_cap) <= chip.ub_bytes), None)
    if key_tile is None:
        raise AscendCodegenError(
            f"attention over n_ctx {ctx} keys (head_dim {head_dim}) needs "
            f"{attention_ub_bytes(head_dim, KEY_TILES[-1], score_cap)} bytes of UB, {chip.title} has "
            f"{chip.ub_bytes}: a row's scores must fit (an online-softmax kernel is not implemented)")
    pairs_per_core, block_dim = _split(tokens * heads, chip.n_cores)
    return {"blockDim": block_dim, "tokens": tokens, "heads": heads, "kvHeads": kv_heads, "headDim": head_dim,
            "ctx": ctx, "seqs": seqs, "keyTile": key_tile, "scoreCap": score_cap,
            "workBytes": _round_up(_ceil_div(score_cap, 64), 8) * 4, "pairsPerCore": pairs_per_core}


def attention(chip: AscendChip, tokens: int, heads: int, kv_heads: int, head_dim: int, ctx: int, seqs: int = 1,
              scale: float = 1.0, window: int = 0, softcap: float = 0.0, sinks: bool = False,
              origin: str = "attention") -> AscendKernel:
    """out[t, h] = softmax(K·q[t, h] * scale (softcapped) + sink) · V over the cached keys token t sees."""
    plan = plan_attention(chip, tokens, heads, kv_heads, head_dim, ctx, seqs)
    names = ("tokens", "heads", "kvHeads", "headDim", "ctx", "seqs", "keyTile", "scoreCap", "workBytes",
             "pairsPerCore")
    fields = [TilingField(f, "uint32_t", plan[f]) for f in names] + [
        TilingField("window", "uint32_t", window), TilingField("hasSinks", "uint32_t", int(sinks)),
        TilingField("scale", "float", float(scale)), TilingField("softcap", "float", float(softcap))]
    name = f"{PREFIX}attention_f32"
    doc = [
        "out[t, h] = softmax(K.q * scale, softcapped, with the sink logit) . V over the keys token t sees:",
        "  positions [pos - window + 1, pos] (window 0: [0, pos]) of its sequence, (seq, pos) from `rows`.",
        "Shapes: q, out (tokens, heads * headDim) float; kCache, vCache (seqs, ctx, kvHeads, headDim) half;",
        "  sinks (heads,) float (hasSinks); rows (tokens, 2) int32.",
        "Tiling: (token, head) pairs split over the cores; keys in tiles of keyTile rows (one strided",
        "  DataCopy each, double-buffered); the row's scores stay in UB (scoreCap floats).",
        f"{chip.title} UB {chip.ub_bytes // 1024} KB.",
    ]
    spec = _spec(name, chip, "causal GQA attention over the f16 KV cache", doc, fields, origin,
                 max_key_tile=MAX_KEY_TILE)
    width, kv_width = heads * head_dim, kv_heads * head_dim
    args = (
        KernelArg("q", "float32", (tokens, width), (tokens, width)),
        KernelArg("kCache", "float16", (seqs * ctx, kv_width), (seqs * ctx, kv_width)),
        KernelArg("vCache", "float16", (seqs * ctx, kv_width), (seqs * ctx, kv_width)),
        KernelArg("sinks", "float32", (heads,), (heads,)),
        KernelArg("rows", "int32", (tokens, 2), (tokens, 2)),
        KernelArg("out", "float32", (tokens, width), (tokens, width), output=True),
    )
    source, host = _render("attention.cpp.j2", spec, args)
    return AscendKernel(name, "attention", chip, source, host, args, tuple(fields), plan["blockDim"],
                        recipe={"family": "attention"})


def kv_store(chip: AscendChip, tokens: int, kv_heads: int, head_dim: int, ctx: int, seqs: int = 1,
             origin: str = "attention") -> AscendKernel:
    """kCache/vCache[seq, pos] = f16(key/value[t]) for every token t, (seq, pos) = rows[t]."""
    row = kv_heads * head_dim
    if min(tokens, kv_heads, head_dim, ctx, seqs) < 1 or row % 16:
        raise AscendCodegenError(f"kv_store: {kv_heads} x {head_dim} KV rows must be whole 32-byte f16 blocks")
    if BUFFER_NUM * row * 6 > chip.ub_bytes:
        raise AscendCodegenError(f"kv_store: a {row}-float K row does not fit {chip.title} UB")
    per_core, block_dim = _split(tokens, chip.n_cores)
    fields = [TilingField(f, "uint32_t", v) for f, v in (("tokens", tokens), ("kvHeads", kv_heads),
                                                          ("headDim", head_dim), ("ctx", ctx), ("seqs", seqs),
                                                          ("tokensPerCore", per_core))]
    name = f"{PREFIX}kv_store_f32"
    doc = ["kCache/vCache[seq, pos] = f16(key/value[t]) (nearest even), (seq, pos) = rows[t].",
           "Shapes: key, value (tokens, kvHeads * headDim) float; rows (tokens, 2) int32;",
           "  kCache, vCache (seqs, ctx, kvHeads * headDim) half.",
           "Tiling: tokens split over the cores, one K and one V row per step; no two tokens share a slot."]
    spec = _spec(name, chip, "store K and V rows into the f16 KV cache", doc, fields, origin)
    args = (
        KernelArg("key", "float32", (tokens, row), (tokens, row)),
        KernelArg("value", "float32", (tokens, row), (tokens, row)),
        KernelArg("rows", "int32", (tokens, 2), (tokens, 2)),
        KernelArg("kCache", "float16", (seqs * ctx, row), (seqs * ctx, row), output=True),
        KernelArg("vCache", "float16", (seqs * ctx, row), (seqs * ctx, row), output=True),
    )
    source, host = _render("kv_store.cpp.j2", spec, args)
    return AscendKernel(name, "kv_store", chip, source, host, args, tuple(fields), block_dim,
                        recipe={"family": "kv_store"})
