"""The CPU emitter: one C kernel call per IR node, for the host part of every generated model."""
from __future__ import annotations

from llmc.ir import expr as X
from llmc.ir.graph import Node
from llmc.ir.ops import Op

from llmc.codegen.core.pointwise import node_kernel
from llmc.ir.ops import POINTWISE

from . import pointwise as c_pointwise
from llmc.codegen.core.schedule import ROPE_MODE, Call, Emitter


class CEmitter(Emitter):
    kind = "c"

    def emit(self, b, n: Node) -> Call | None:
        g = b.graph
        ins = g.inputs(n.id)
        v = b.var
        a = n.attrs
        where = b.where(n)
        out = v(n.id)
        shape = n.shape
        rows, cols = b.numel(shape, -1), b.ci(shape[-1])
        total = b.numel(shape)
        op = n.op
        if op in (Op.LOOP_IN, Op.RESHAPE, Op.TRANSFER, Op.WEIGHT):
            return None
        if op is Op.TOKENS:
            return Call(where, [f"memcpy({out}, tokens, sizeof(int32_t) * (size_t)T);"])
        if op is Op.POSITIONS:
            return Call(where, [f"memcpy({out}, in_pos, sizeof(int32_t) * (size_t)T);"])
        if op is Op.EMBED:
            fn, extra = b.weight_kernel("embed", ins[0])
            return Call(where, [f"{fn}({', '.join(extra + [out, v(ins[0]), v(ins[1]), 'T', cols])});"])
        if op is Op.MATMUL and n.matmul_group is not None:
            return self._matmul_group(b, n, where)
        if op is Op.MATMUL:
            x, w, bias = ins
            fn, extra = b.weight_kernel("matmul", w)
            wn = g.node(w)
            n_in, n_out = b.ci(wn.shape[1]), b.ci(wn.shape[0])
            lines = [f"{fn}({', '.join(extra + ['m->th', out, v(w), v(x), n_in, n_out, rows, 'm->scratch'])});"]
            if bias is not None:
                lines.append(self._bias(b, out, bias, rows, n_out))
            return Call(where, lines)
        if op in POINTWISE:
            if n.fused is not None and n.fused.group != n.id:
                return None                     # the group's kernel runs at its last member
            return Call(where, [self.pointwise(b, n)])
        if op is Op.ROPE:
            mode = ROPE_MODE[a["mode"].value]
            p = (f"{{ .mode = {mode}, .n_dims = {b.ci(a['n_dims'])}, .base = (float)({b.c(a['base'])}), "
                 f".freq_scale = (float)({b.c(a['freq_scale'])}), .ext_factor = (float)({b.c(a['ext_factor'])}), "
                 f".attn_factor = (float)({b.c(a['attn_factor'])}), .beta_fast = (float)({b.c(a['beta_fast'])}), "
                 f".beta_slow = (float)({b.c(a['beta_slow'])}), .n_ctx_orig = {b.ci(a['n_ctx_orig'])} }}")
            return Call(where, ["{",
                                f"    const llmc_rope_params rp = {p};",
                                f"    if ({out} != {v(ins[0])}) memcpy({out}, {v(ins[0])}, sizeof(float) * {total});",
                                f"    llmc_rope_f32({out}, {v(ins[1])}, T, {b.ci(shape[1])}, {b.ci(shape[2])}, &rp);",
                                "}"])
        if op is Op.ATTENTION:
            q, k, val, sinks = ins
            qs, ks = g.node(q).shape, g.node(k).shape
            kv = f"kv_{n.id}"
            b.s.kv.append((kv, f"{b.numel(ks[1:])}", where))
            sink = v(sinks) if sinks is not None else "NULL"
            layer = f"(size_t)il * m->n_seq * m->n_ctx * {b.numel(ks[1:])}"     # caches: (n_layer, n_seq, n_ctx, row)
            return Call(where, [f"llmc_attention_f32(m->th, {out}, {v(q)}, {v(k)}, {v(val)}, "
                                f"m->k_{kv} + {layer}, m->v_{kv} + {layer}, in_seq, in_pos, T, "
                                f"{b.ci(qs[1])}, {b.ci(ks[1])}, {b.ci(qs[2])}, m->n_ctx, "
                                f"(float)({b.c(a['scale'])}), {b.ci(a['window'])}, (float)({b.c(a['softcap'])}), {sink}, "
                                "m->attn_scratch);"])
        if op is Op.TOPK:
            src = g.node(ins[0]).shape
            return Call(where, [f"llmc_top_k_f32({out}, {v(ins[0])}, {b.numel(src, -1)}, {b.ci(src[-1])}, "
                                f"{b.ci(a['k'])});"])
        if op is Op.GATHER:
            src = g.node(ins[0]).shape
            return Call(where, [f"llmc_gather_f32({out}, {v(ins[0])}, {v(ins[1])}, {b.numel(src, -1)}, "
                                f"{b.ci(src[-1])}, {cols});"])
        if op is Op.MOE_MATMUL:
            x, w, sel, bias_in = ins
            fn, extra = b.weight_kernel("moe_matmul", w)
            wn, xs = g.node(w), g.node(x).shape
            bias = v(bias_in) if bias_in is not None else "NULL"
            return Call(where, [f"{fn}({', '.join(extra + ['m->th', out, v(w), v(x), '1' if len(xs) == 3 else '0', v(sel), bias, b.ci(wn.shape[2]), b.ci(wn.shape[1]), 'T', b.ci(shape[1]), 'm->scratch'])});"])
        if op is Op.WEIGHTED_SUM:
            xs = g.node(ins[0]).shape
            return Call(where, [f"llmc_weighted_sum_f32({out}, {v(ins[0])}, {v(ins[1])}, T, {b.ci(xs[1])}, "
                                f"{b.ci(xs[2])});"])
        raise NotImplementedError(f"the C target has no kernel for {op.value} ({n.loc})")

    def pointwise(self, b, n: Node) -> str:
        """A call of the generated kernel of a pointwise node (its definition is added to model.c once)."""
        k = node_kernel(b.graph, n)
        if k.plan.name not in b.s.functions:
            b.s.functions.setdefault("llmc_round_f16", c_pointwise.ROUND_F16)
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
