"""The attention rows of the AscendC emitter (codegen/ascendc/emit.py): the KV caches in device memory,
the per-step (sequence, position) array, and the two launches of an attention node (docs/ascendc.md §14)."""
from __future__ import annotations

from llmc.codegen.core.schedule import Call
from llmc.ir.graph import Node
from llmc.ir.ops import Op

from . import attention as A
from .kernels import AscendChip

ENTRY_PARAMS = {
    "attention": ("float *out, const float *q, const void *k_cache, const void *v_cache, const float *sinks, "
                  "const int32_t *rows, long tokens, long heads, long kv_heads, long head_dim, long ctx, long seqs, "
                  "float scale, long window, float softcap", ("q", "k_cache", "v_cache", "sinks", "rows", "out")),
    "kv_store": ("void *k_cache, void *v_cache, const float *key, const float *value, const int32_t *rows, "
                 "long tokens, long kv_heads, long head_dim, long ctx, long seqs",
                 ("key", "value", "rows", "k_cache", "v_cache")),
}
# stand-in dims: the sources do not depend on them
BUILD = {"attention": lambda c: A.attention(c, 1, 1, 1, 16, 64), "kv_store": lambda c: A.kv_store(c, 1, 1, 16, 64)}
# tiling fields the host entry takes from its parameters rather than from its Plan
EXTRA_FIELDS = {"scale": "scale", "softcap": "softcap", "window": "static_cast<uint32_t>(window)",
                "hasSinks": "sinks != nullptr ? 1u : 0u"}
PLAN_FIELDS = {"kvHeads", "ctx", "seqs", "keyTile", "scoreCap", "pairsPerCore"}


def needs(emitter, b, n: Node) -> list[tuple[str, dict]]:
    return [("attention", {}), ("kv_store", {})]


def call(emitter, b, n: Node, where: str) -> Call:
    g, a = b.graph, n.attrs
    q, k, v, sinks = g.inputs(n.id)
    qs, ks = g.node(q).shape, g.node(k).shape
    attend, store = emitter.node_kernels[n.id]
    cache = f"m->asc_k{n.id}[il], m->asc_v{n.id}[il]"
    sink = emitter._weight_ref(b, sinks) if sinks is not None else "NULL"
    dims = f"T, {b.ci(ks[1])}, {b.ci(ks[2])}, m->n_ctx, m->n_seq"
    return Call(where, [
        f"if (!{store}(m->asc, {cache}, {b.var(k)}, {b.var(v)}, m->asc_rows, {dims}, err, err_len)) return 0;",
        (f"if (!{attend}(m->asc, {b.var(n.id)}, {b.var(q)}, {cache}, {sink}, m->asc_rows, T, {b.ci(qs[1])}, "
         f"{b.ci(ks[1])}, {b.ci(ks[2])}, m->n_ctx, m->n_seq, (float)({b.c(a['scale'])}), "
         f"(long)({b.c(a['window'])}), (float)({b.c(a['logit_cap'])}), err, err_len)) return 0;")])


def setup(emitter, b, mine: list[Node]) -> None:
    """KV caches per attention node and layer (f16, n_seq x n_ctx rows); the step's rows array, which also
    carries the token ids when the embedding runs here."""
    s, g = b.s, b.graph
    nodes = [n for n in mine if n.op is Op.ATTENTION]
    embeds = any(n.op is Op.EMBED for n in mine)
    if not nodes and not embeds:
        return
    s.fields += ["int32_t *asc_rows;   /* device: (sequence, position) of each token this step, then the token ids */",
                 "int32_t *asc_rows_host;"]
    load = ["m->asc_rows = llmc_ascend_alloc(m->asc, sizeof(int32_t) * 3 * (size_t)m->n_batch, err, err_len);",
            "m->asc_rows_host = malloc(sizeof(int32_t) * 3 * (size_t)m->n_batch);",
            "if (!m->asc_rows) goto fail;",
            'if (!m->asc_rows_host) { llmc_fail(err, err_len, "out of memory"); goto fail; }']
    for n in nodes:
        qs, ks = g.node(g.inputs(n.id)[0]).shape, g.node(g.inputs(n.id)[1]).shape
        load += [f"if (!llmc_ascend_check_attention(m->n_batch, {b.ci(qs[1])}, {b.ci(ks[1])}, {b.ci(ks[2])}, "
                 "m->n_ctx, m->n_seq, err, err_len)) goto fail;   /* refuse an n_ctx the kernel cannot tile */"]
        s.fields.append(f"void **asc_k{n.id}, **asc_v{n.id};   /* [n_layer] f16 KV caches of %{n.id} on the device */")
        load += ["{",
                 f"    const size_t bytes = 2 * (size_t)m->n_seq * (size_t)m->n_ctx * (size_t)({b.numel(ks[1:])});",
                 f"    m->asc_k{n.id} = calloc((size_t)m->n_layer, sizeof(void *));",
                 f"    m->asc_v{n.id} = calloc((size_t)m->n_layer, sizeof(void *));",
                 f'    if (!m->asc_k{n.id} || !m->asc_v{n.id}) {{ llmc_fail(err, err_len, "out of memory"); goto fail; }}',
                 "    for (int il = 0; il < m->n_layer; il++) {",
                 f"        if (!(m->asc_k{n.id}[il] = llmc_ascend_alloc(m->asc, bytes, err, err_len))) goto fail;",
                 f"        if (!(m->asc_v{n.id}[il] = llmc_ascend_alloc(m->asc, bytes, err, err_len))) goto fail;",
                 "    }", "}"]
        s.free_lines += [f"free(m->asc_k{n.id});", f"free(m->asc_v{n.id});"]
    s.load_lines += load
    s.free_lines.append("free(m->asc_rows_host);")
    s.pre.append(Call(f"each token's (sequence, position) and id to {emitter.device}: one copy per step",
                      ["for (int t = 0; t < T; t++) {",
                       "    m->asc_rows_host[2 * t] = in_seq[t];",
                       "    m->asc_rows_host[2 * t + 1] = in_pos[t];",
                       "    m->asc_rows_host[2 * T + t] = tokens[t];",
                       "}",
                       "if (!llmc_ascend_copy(m->asc, m->asc_rows, m->asc_rows_host, sizeof(int32_t) * 3 * (size_t)T, "
                       "LLMC_ASCEND_TO_DEVICE, err, err_len)) return 0;"]))


