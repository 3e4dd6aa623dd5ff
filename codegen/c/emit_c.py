"""The CPU emitter: one C kernel call per IR node, for the host part of every generated model.

Dispatch is the table CEmitter.KERNELS (op -> method); codegen/core/schedule.py Emitter says how it is used."""
from __future__ import annotations

from llmc.codegen.core.pointwise import node_kernel
from llmc.codegen.core.schedule import NO_CODE, ROPE_MODE, Call, Emitter
from llmc.ir.graph import Node
from llmc.ir.ops import POINTWISE, Op

from . import pointwise as c_pointwise


class CEmitter(Emitter):
    kind = "c"

    def emit(self, b, n: Node) -> Call | None:
        where = b.where(n)      # for every node: it remembers the DSL line, which the next comment shortens to "..."
        if n.op in NO_CODE:
            return None
        return self.kernel_of(n)(self, b, n, where)

    # ---- one method per op (the table KERNELS below): (b, node, where) -> the node's Call ---------------
    def _tokens(self, b, n: Node, where: str) -> Call:
        return Call(where, [f"memcpy({b.var(n.id)}, tokens, sizeof(int32_t) * (size_t)T);"])

    def _positions(self, b, n: Node, where: str) -> Call:
        return Call(where, [f"memcpy({b.var(n.id)}, in_pos, sizeof(int32_t) * (size_t)T);"])

    def _embed(self, b, n: Node, where: str) -> Call:
        table, tokens = b.graph.inputs(n.id)
        fn, extra = b.weight_kernel("embed", table)
        args = extra + [b.var(n.id), b.var(table), b.var(tokens), "T", b.ci(n.shape[-1])]
        return Call(where, [f"{fn}({', '.join(args)});"])

    def _matmul(self, b, n: Node, where: str) -> Call | None:
        if n.matmul_group is not None:
            return self._matmul_group(b, n, where)
        g, v = b.graph, b.var
        x, w, bias = g.inputs(n.id)
        fn, extra = b.weight_kernel("matmul", w)
        wn = g.node(w)
        n_in, n_out = b.ci(wn.shape[1]), b.ci(wn.shape[0])
        rows = b.numel(n.shape, -1)
        lines = [f"{fn}({', '.join(extra + ['m->th', v(n.id), v(w), v(x), n_in, n_out, rows, 'm->scratch'])});"]
        if bias is not None:
            lines.append(self._bias(b, v(n.id), bias, rows, n_out))
        return Call(where, lines)

    def _pointwise(self, b, n: Node, where: str) -> Call | None:
        if n.fused is not None and n.fused.group != n.id:
            return None                     # the group's kernel runs at its last member
        return Call(where, [self.pointwise(b, n)])

    def _rope(self, b, n: Node, where: str) -> Call:
        a, out, shape = n.attrs, b.var(n.id), n.shape
        x, positions, freq_factors = b.graph.inputs(n.id)
        mode = ROPE_MODE[a["mode"].value]
        factors = b.var(freq_factors) if freq_factors is not None else "NULL"
        p = (f"{{ .mode = {mode}, .n_dims = {b.ci(a['n_dims'])}, .base = (float)({b.c(a['base'])}), "
             f".freq_scale = (float)({b.c(a['freq_scale'])}), .ext_factor = (float)({b.c(a['ext_factor'])}), "
             f".attn_factor = (float)({b.c(a['attn_factor'])}), .beta_fast = (float)({b.c(a['beta_fast'])}), "
             f".beta_slow = (float)({b.c(a['beta_slow'])}), .n_ctx_orig = {b.ci(a['n_ctx_orig'])} }}")
        return Call(where, ["{",
                                 f"    const llmc_rope_params rp = {p};",
                                 f"    if ({out} != {b.var(x)}) memcpy({out}, {b.var(x)}, sizeof(float) * "
                                 f"{b.numel(shape)});",
                                 f"    llmc_rope_f32({out}, {b.var(positions)}, T, {b.ci(shape[1])}, "
                                 f"{b.ci(shape[2])}, &rp, {factors});",
                                 "}"])

    def _attention(self, b, n: Node, where: str) -> Call:
        g, v, a = b.graph, b.var, n.attrs
        q, k, val, sinks = g.inputs(n.id)
        qs, ks = g.node(q).shape, g.node(k).shape
        kv = f"kv_{n.id}"
        b.s.kv.append((kv, f"{b.numel(ks[1:])}", where))
        sink = v(sinks) if sinks is not None else "NULL"
        layer = f"(size_t)il * m->n_seq * m->n_ctx * {b.numel(ks[1:])}"     # caches: (n_layer, n_seq, n_ctx, row)
        return Call(where, [f"llmc_attention_f32(m->th, {v(n.id)}, {v(q)}, {v(k)}, {v(val)}, "
                            f"m->k_{kv} + {layer}, m->v_{kv} + {layer}, in_seq, in_pos, T, "
                            f"{b.ci(qs[1])}, {b.ci(ks[1])}, {b.ci(qs[2])}, m->n_ctx, "
                            f"(float)({b.c(a['scale'])}), {b.ci(a['window'])}, (float)({b.c(a['logit_cap'])}), {sink});"])

    def _top_k(self, b, n: Node, where: str) -> Call:
        x = b.graph.inputs(n.id)[0]
        src = b.graph.node(x).shape
        return Call(where, [f"llmc_top_k_f32({b.var(n.id)}, {b.var(x)}, {b.numel(src, -1)}, "
                                 f"{b.ci(src[-1])}, {b.ci(n.attrs['k'])});"])

    def _gather(self, b, n: Node, where: str) -> Call:
        x, index = b.graph.inputs(n.id)
        src = b.graph.node(x).shape
        return Call(where, [f"llmc_gather_f32({b.var(n.id)}, {b.var(x)}, {b.var(index)}, "
                                 f"{b.numel(src, -1)}, {b.ci(src[-1])}, {b.ci(n.shape[-1])});"])

    def _moe_matmul(self, b, n: Node, where: str) -> Call:
        g, v = b.graph, b.var
        x, w, sel, bias_in = g.inputs(n.id)
        fn, extra = b.weight_kernel("moe_matmul", w)
        wn, xs = g.node(w), g.node(x).shape
        bias = v(bias_in) if bias_in is not None else "NULL"
        args = extra + ["m->th", v(n.id), v(w), v(x), "1" if len(xs) == 3 else "0", v(sel), bias,
                        b.ci(wn.shape[2]), b.ci(wn.shape[1]), "T", b.ci(n.shape[1]), "m->scratch"]
        return Call(where, [f"{fn}({', '.join(args)});"])

    def _weighted_sum(self, b, n: Node, where: str) -> Call:
        x, weights = b.graph.inputs(n.id)
        xs = b.graph.node(x).shape
        return Call(where, [f"llmc_weighted_sum_f32({b.var(n.id)}, {b.var(x)}, {b.var(weights)}, T, "
                                 f"{b.ci(xs[1])}, {b.ci(xs[2])});"])

    KERNELS = {Op.TOKENS: _tokens, Op.POSITIONS: _positions, Op.EMBED: _embed, Op.MATMUL: _matmul,
               Op.ROPE: _rope, Op.ATTENTION: _attention, Op.TOPK: _top_k, Op.GATHER: _gather,
               Op.MOE_MATMUL: _moe_matmul, Op.WEIGHTED_SUM: _weighted_sum,
               **dict.fromkeys(POINTWISE, _pointwise)}

    # ---- helpers --------------------------------------------------------------------------------------
    def pointwise(self, b, n: Node) -> str:
        """A call of the generated kernel of a pointwise node (its definition is added to model.c once)."""
        k = node_kernel(b.graph, n, tables=True)
        if k.plan.name not in b.s.functions:
            b.s.functions.setdefault("llmc_round_f16", c_pointwise.ROUND_F16)
            for t in c_pointwise.tables_of(k.plan):
                b.s.functions.setdefault(c_pointwise.table_name(t), c_pointwise.table(t))
            b.s.functions[k.plan.name] = c_pointwise.function(k.plan)
        return c_pointwise.call(k.plan, [b.var(o) for o in k.outputs], {o: b.var(nid) for o, nid in k.inputs.items()},
                                b.numel(k.rows), f"(long)({b.c(k.n)})",
                                {o: (f"(long)({b.c(st)})", f"(long)({b.c(off)})") for o, (st, off) in k.slices.items()},
                                {a: b.c(v) for a, v in k.scalars.items()})

    def _matmul_group(self, b, n: Node, where: str) -> Call | None:
        """The first member of a matmul group emits the whole group (compiler/passes/group_matmuls.py);
        the memory plan keeps every member's output free from there on."""
        g = b.graph
        leader = n.matmul_group
        if n.id != leader:
            return None
        members = [m for m in g.order(n.region) if g.node(m).op is Op.MATMUL
                   and g.node(m).matmul_group == leader]
        x = g.inputs(leader)[0]
        ws = [g.inputs(m)[1] for m in members]
        n_in = b.ci(g.node(ws[0]).shape[1])
        rows = b.numel(n.shape, -1)
        outs = [b.ci(g.node(w).shape[0]) for w in ws]
        k = len(members)
        lines = ["{",
                 f"    float *const ys[{k}] = {{{', '.join(b.var(m) for m in members)}}};",
                 f"    const void *const ws[{k}] = {{{', '.join(b.var(w) for w in ws)}}};",
                 f"    const int n_outs[{k}] = {{{', '.join(outs)}}};"]
        kernel, extra = b.weight_kernel("matmul", ws[0])
        same_type = all(b.weight_kernel("matmul", w) == (kernel, extra) for w in ws) and not extra
        if same_type:
            lines.append(f"    {kernel}_group(m->th, {k}, ys, ws, n_outs, {b.var(x)}, {n_in}, {rows}, m->scratch);")
        else:
            lines.append(f"    const int types[{k}] = {{{', '.join(b.wtype(w) for w in ws)}}};")
            lines.append(f"    llmc_matmul_group_any(m->th, {k}, types, ys, ws, n_outs, {b.var(x)}, {n_in}, {rows}, "
                         "m->scratch);")
        lines.append("}")
        names = ", ".join(g.node(m).label or f"%{m}" for m in members)
        for m, w, n_out in zip(members, ws, outs):
            bias = g.inputs(m)[2]
            if bias is not None:
                lines.append(self._bias(b, b.var(m), bias, rows, n_out))
        return Call(f"{where}  (group: {names})", lines)

    def _bias(self, b, out: str, bias: int, rows: str, n_out: str) -> str:
        call = f"llmc_add_f32({out}, {out}, {b.var(bias)}, {rows}, {n_out}, 1);"
        if b.graph.node(bias).attrs.get("optional"):
            return f"if ({b.var(bias)}) {call}"
        return call
