"""Whole-model C: the generated schedule (load, forward) that calls the kernels in order.

Python decides every name, size and call here; templates/model.c.j2 only lays them out. Dims are C
expressions over the hyperparameters, read at load time (generic artifact) or baked in as constants
(specialized to one GGUF file).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from llmc.compiler.plan_memory import MemoryPlan
from llmc.ir import expr as X
from llmc.ir.graph import Graph, Node
from llmc.ir.ops import Op

from .matmul import _ENV

ROPE_MODE = {"norm": 0, "neox": 2}
TYPE_IDS = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 8, "Q4_K": 12, "Q6_K": 14, "BF16": 30, "MXFP4": 39}
WEIGHT_ANY, WEIGHT_F32 = 0, 1      # what a weight may be: any supported matmul type, or plain f32
_C_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Call:
    comment: str
    lines: list[str]


@dataclass
class WeightDecl:
    field: str
    gguf_format: str          # printf format of the tensor name: "blk.%d.attn_q.weight"
    fallback_format: str | None
    optional: bool
    per_layer: bool
    kind: int
    ne: list[str]             # expected ne, C expressions
    comment: str
    want_type: int = -1       # the GGUF type a specialized artifact was built for; -1 = any


@dataclass
class Schedule:
    arch: str
    source: str
    params: list[str]
    specialized: dict[str, Any] | None
    weights: list[WeightDecl] = field(default_factory=list)
    buffers: list[tuple[str, str, int]] = field(default_factory=list)   # (C type, name, slot)
    slot_sizes: list[list[str]] = field(default_factory=list)
    kv: list[tuple[str, str, str]] = field(default_factory=list)        # (name, row elems, comment)
    pre: list[Call] = field(default_factory=list)
    layer: list[Call] = field(default_factory=list)
    post: list[Call] = field(default_factory=list)
    n_layer: str = "1"
    n_vocab: str = "0"
    logits: str = ""
    scratch_bytes: list[str] = field(default_factory=list)


class ScheduleBuilder:
    def __init__(self, graph: Graph, plan: MemoryPlan, specialized: dict[str, Any] | None = None):
        self.graph, self.plan, self.spec = graph, plan, specialized
        numeric = [p for p in graph.params]
        self.s = Schedule(graph.arch, graph.source, numeric, specialized)
        self.names: dict[int, str] = {}

    # ---- C expressions ----------------------------------------------------------------------------
    def c(self, e: X.Expr) -> str:
        def name(n: str) -> str:
            if n == "T":
                return "T"
            if n == "n_batch":
                return "m->n_batch"
            if n == self.graph.layer_var:
                return "il"
            if n in self.graph.params:
                return f"HP({n})"
            raise ValueError(f"unknown name {n!r} in generated C")
        return X.to_c(e, name)

    def ci(self, e: X.Expr) -> str:
        return f"(int)({self.c(e)})"

    def numel(self, shape, upto: int | None = None) -> str:
        dims = shape[:upto] if upto is not None else shape
        return " * ".join(f"(long)({self.c(d)})" for d in dims) or "1"

    def var(self, nid: int) -> str:
        if nid not in self.names:
            node = self.graph.node(nid)
            if node.op is Op.WEIGHT:
                base = self._weight_field(node)
                self.names[nid] = f"m->{base}[il].data" if node.region == "layer" else f"m->{base}.data"
            else:
                label = node.label if node.label and _C_IDENT.match(node.label) else "t"
                self.names[nid] = f"{label}_{nid}"
        return self.names[nid]

    def _weight_field(self, node: Node) -> str:
        return f"w_{node.label}" if _C_IDENT.match(node.label) else f"w_{node.id}"

    def wtype(self, nid: int) -> str:
        node = self.graph.node(nid)
        base = self._weight_field(node)
        return f"m->{base}[il].type" if node.region == "layer" else f"m->{base}.type"

    def weight_kernel(self, family: str, nid: int) -> tuple[str, list[str]]:
        """Direct kernel name when specialized to one type, else the runtime dispatcher plus the type."""
        types = (self.spec or {}).get("weight_types", {}).get(str(nid))
        if types is not None and len(set(types)) == 1:
            return f"llmc_{family}_{types[0].lower()}", []
        return f"llmc_{family}_any", [self.wtype(nid)]

    # ---- build --------------------------------------------------------------------------------------
    def build(self) -> Schedule:
        g, s = self.graph, self.s
        s.n_layer = self.ci(g.layer_count) if g.layer_count is not None else "0"
        logits = g.node(g.outputs["logits"])
        s.n_vocab = self.ci(logits.shape[-1])
        for node in g.weights():
            self._declare_weight(node)
        for slot in self.plan.slots:
            s.slot_sizes.append([self._c_bytes(size) for size in slot.sizes])
        for nid in g.order():
            node = g.node(nid)
            if node.op is Op.WEIGHT:
                continue
            if nid in self.plan.alias_of:
                self.names[nid] = self.var(self.plan.alias_of[nid])
                continue
            ctype = "int32_t" if node.dtype == "i32" else "float"
            s.buffers.append((ctype, self.var(nid), self.plan.slot_of[nid]))
        for region, calls in (("pre", s.pre), ("layer", s.layer), ("post", s.post)):
            for nid in g.order(region):
                call = self.emit(g.node(nid))
                if call is not None:
                    calls.append(call)
        for c in g.carried:
            shape = g.node(c.loop_in).shape
            size = f"sizeof(float) * {self.numel(shape)}"
            s.pre.append(Call(f"carry {c.var} into the layer loop",
                              [f"memcpy({self.var(c.loop_in)}, {self.var(c.init)}, {size});"]))
            s.layer.append(Call(f"carry {c.var} to the next layer",
                                [f"memcpy({self.var(c.loop_in)}, {self.var(c.next)}, {size});"]))
        s.logits = self.var(g.outputs["logits"])
        return s

    def _c_bytes(self, size: X.Expr) -> str:
        return f"(size_t)({self.c(size)})"

    def _declare_weight(self, node: Node) -> None:
        g = self.graph
        fmt = self._format(node.attrs["gguf"])
        fb = g.node(node.attrs["fallback"]) if "fallback" in node.attrs else None
        users = [g.node(u) for u in g.users(node.id)]
        kind = WEIGHT_ANY if any(u.op in (Op.MATMUL, Op.EMBED, Op.MOE_MATMUL) and g.inputs(u.id)[1 if u.op is not Op.EMBED else 0] == node.id
                                 for u in users) else WEIGHT_F32
        ne = [self.ci(d) for d in reversed(node.shape)]
        types = (self.spec or {}).get("weight_types", {}).get(str(node.id))
        want = TYPE_IDS[types[0]] if types and len(set(types)) == 1 else -1
        self.s.weights.append(WeightDecl(self._weight_field(node), fmt, self._format(fb.attrs["gguf"]) if fb else None,
                                         bool(node.attrs.get("optional")), node.region == "layer", kind, ne,
                                         f"{node.label}: {node.attrs['gguf']}  ({node.loc})", want))

    def _format(self, template: str) -> str:
        # Names were checked in the frontend: letters, digits, '_', '.', '-' and {placeholders}.
        return template.replace("{arch}", self.graph.arch).replace("{" + self.graph.layer_var + "}", "%d")

    # ---- one call per node ----------------------------------------------------------------------------
    def emit(self, n: Node) -> Call | None:
        g = self.graph
        ins = g.inputs(n.id)
        v = self.var
        a = n.attrs
        where = f"{n.loc}  %{n.id} {n.op.value}" + (f" -> {n.label}" if n.label else "")
        out = v(n.id)
        shape = n.shape
        rows, cols = self.numel(shape, -1), self.ci(shape[-1])
        total = self.numel(shape)
        op = n.op
        if op in (Op.LOOP_IN, Op.RESHAPE, Op.TRANSFER, Op.WEIGHT):
            return None
        if op is Op.TOKENS:
            return Call(where, [f"memcpy({out}, tokens, sizeof(int32_t) * (size_t)T);"])
        if op is Op.POSITIONS:
            return Call(where, [f"for (int t = 0; t < T; t++) {out}[t] = pos + t;"])
        if op is Op.EMBED:
            fn, extra = self.weight_kernel("embed", ins[0])
            return Call(where, [f"{fn}({', '.join(extra + [out, v(ins[0]), v(ins[1]), 'T', cols])});"])
        if op is Op.MATMUL:
            x, w, b = ins
            fn, extra = self.weight_kernel("matmul", w)
            wn = g.node(w)
            n_in, n_out = self.ci(wn.shape[1]), self.ci(wn.shape[0])
            lines = [f"{fn}({', '.join(extra + ['m->th', out, v(w), v(x), n_in, n_out, rows, 'm->scratch'])});"]
            if b is not None:
                lines.append(self._bias(out, b, rows, n_out))
            return Call(where, lines)
        if op in (Op.ADD, Op.MUL):
            fn = "llmc_add_f32" if op is Op.ADD else "llmc_mul_f32"
            bshape = g.node(ins[1]).shape
            b_rows = self.numel(bshape, -1)
            call = f"{fn}({out}, {v(ins[0])}, {v(ins[1])}, {rows}, {cols}, {b_rows});"
            if g.node(ins[1]).op is Op.WEIGHT and g.node(ins[1]).attrs.get("optional"):
                return Call(where, [f"if ({v(ins[1])}) {call}",
                                    f"else if ({out} != {v(ins[0])}) memcpy({out}, {v(ins[0])}, sizeof(float) * {total});"])
            return Call(where, [call])
        if op is Op.SCALE:
            return Call(where, [f"llmc_scale_f32({out}, {v(ins[0])}, {total}, (float)({self.c(a['scale'])}), "
                                f"(float)({self.c(a['bias'])}));"])
        if op in (Op.SQR, Op.RSQRT, Op.SILU):
            return Call(where, [f"llmc_{op.value}_f32({out}, {v(ins[0])}, {total});"])
        if op is Op.MEAN:
            src = g.node(ins[0]).shape
            return Call(where, [f"llmc_mean_f32({out}, {v(ins[0])}, {self.numel(src, -1)}, {self.ci(src[-1])});"])
        if op is Op.SOFTMAX:
            return Call(where, [f"llmc_softmax_f32({out}, {v(ins[0])}, {rows}, {cols});"])
        if op is Op.RMS_NORM:
            return Call(where, [f"llmc_rms_norm_f32({out}, {v(ins[0])}, {rows}, {cols}, (float)({self.c(a['eps'])}));"])
        if op is Op.SWIGLU:
            return Call(where, [f"llmc_swiglu_f32({out}, {v(ins[0])}, {v(ins[1])}, {total});"])
        if op is Op.SWIGLU_OAI:
            return Call(where, [f"llmc_swiglu_oai_f32({out}, {v(ins[0])}, {v(ins[1])}, {total}, "
                                f"(float)({self.c(a['alpha'])}), (float)({self.c(a['limit'])}));"])
        if op is Op.ROPE:
            mode = ROPE_MODE[a["mode"].value]
            p = (f"{{ .mode = {mode}, .n_dims = {self.ci(a['n_dims'])}, .base = (float)({self.c(a['base'])}), "
                 f".freq_scale = (float)({self.c(a['freq_scale'])}), .ext_factor = (float)({self.c(a['ext_factor'])}), "
                 f".attn_factor = (float)({self.c(a['attn_factor'])}), .beta_fast = (float)({self.c(a['beta_fast'])}), "
                 f".beta_slow = (float)({self.c(a['beta_slow'])}), .n_ctx_orig = {self.ci(a['n_ctx_orig'])} }}")
            return Call(where, ["{",
                                f"    const llmc_rope_params rp = {p};",
                                f"    if ({out} != {v(ins[0])}) memcpy({out}, {v(ins[0])}, sizeof(float) * {total});",
                                f"    llmc_rope_f32({out}, {v(ins[1])}, T, {self.ci(shape[1])}, {self.ci(shape[2])}, &rp);",
                                "}"])
        if op is Op.ATTENTION:
            q, k, val, sinks = ins
            qs, ks = g.node(q).shape, g.node(k).shape
            kv = f"kv_{n.id}"
            self.s.kv.append((kv, f"{self.numel(ks[1:])}", where))
            sink = v(sinks) if sinks is not None else "NULL"
            return Call(where, [f"llmc_attention_f32(m->th, {out}, {v(q)}, {v(k)}, {v(val)}, "
                                f"m->k_{kv} + (size_t)il * m->n_ctx * {self.numel(ks[1:])}, "
                                f"m->v_{kv} + (size_t)il * m->n_ctx * {self.numel(ks[1:])}, T, pos, "
                                f"{self.ci(qs[1])}, {self.ci(ks[1])}, {self.ci(qs[2])}, m->n_ctx, "
                                f"(float)({self.c(a['scale'])}), {self.ci(a['window'])}, {sink}, m->attn_scratch);"])
        if op is Op.TOPK:
            src = g.node(ins[0]).shape
            return Call(where, [f"llmc_top_k_f32({out}, {v(ins[0])}, {self.numel(src, -1)}, {self.ci(src[-1])}, "
                                f"{self.ci(a['k'])});"])
        if op is Op.GATHER:
            src = g.node(ins[0]).shape
            return Call(where, [f"llmc_gather_f32({out}, {v(ins[0])}, {v(ins[1])}, {self.numel(src, -1)}, "
                                f"{self.ci(src[-1])}, {cols});"])
        if op is Op.MOE_MATMUL:
            x, w, sel, b = ins
            fn, extra = self.weight_kernel("moe_matmul", w)
            wn, xs = g.node(w), g.node(x).shape
            bias = v(b) if b is not None else "NULL"
            return Call(where, [f"{fn}({', '.join(extra + ['m->th', out, v(w), v(x), '1' if len(xs) == 3 else '0', v(sel), bias, self.ci(wn.shape[2]), self.ci(wn.shape[1]), 'T', self.ci(shape[1]), 'm->scratch'])});"])
        if op is Op.WEIGHTED_SUM:
            xs = g.node(ins[0]).shape
            return Call(where, [f"llmc_weighted_sum_f32({out}, {v(ins[0])}, {v(ins[1])}, T, {self.ci(xs[1])}, "
                                f"{self.ci(xs[2])});"])
        raise NotImplementedError(f"the C target has no kernel for {op.value} ({n.loc})")

    def _bias(self, out: str, b: int, rows: str, n_out: str) -> str:
        call = f"llmc_add_f32({out}, {out}, {self.var(b)}, {rows}, {n_out}, 1);"
        if self.graph.node(b).attrs.get("optional"):
            return f"if ({self.var(b)}) {call}"
        return call


def render_model_c(graph: Graph, plan: MemoryPlan, specialized: dict[str, Any] | None = None) -> str:
    schedule = ScheduleBuilder(graph, plan, specialized).build()
    return _ENV.get_template("model.c.j2").render(s=schedule, type_ids=TYPE_IDS)
