"""Backend-neutral lowering of a pointwise expression tree (ir/pointwise.py) to a row kernel.

A kernel runs over a (rows, n) view of its output. For each row it runs `stages` in order — a row
reduction (sum or max over the n elements of an expression) or a per-row value (`let`) — then writes
every element of the row from `out` (or one value per row when the op is per-row, like mean). The
backends (codegen/{c,opencl,ascendc}/pointwise.py) only print this plan; what is hoisted out of the
element loop, which inputs are read how, and the kernel's name and parameters are decided here, once.

In a lowered tree, `in` leaves name an `Operand`, `attr` leaves a float parameter, and `tmp` leaves a
stage's per-row value.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmc.ir import pointwise as P
from llmc.ir.pointwise import E

# How a kernel reads an input for output element (r, c) of a (rows, n) view.
LAYOUTS = {
    "elem": "one value per element: [r * n + c]",
    "col": "one vector for every row: [c]",
    "row": "one value per row: [r]",
    "scalar": "one value: [0]",
    "slice": "features [offset, offset + n) of a wider row: [r * stride + offset + c]",
}


@dataclass(frozen=True)
class Operand:
    name: str                 # the kernel parameter
    layout: str               # a key of LAYOUTS
    absent: float | None      # the value read when the pointer is NULL at run time; None: never NULL


@dataclass(frozen=True)
class Stage:
    tmp: str                  # per-row variable name
    kind: str                 # "sum" (double accumulator), "max", or "let"
    expr: E                   # summed / maxed over the row, or the per-row value itself
    dtype: str                # "f32" or "f64"


@dataclass(frozen=True)
class KernelPlan:
    name: str
    operands: tuple[Operand, ...]
    scalars: tuple[str, ...]          # float parameters, in order
    stages: tuple[Stage, ...]
    outs: tuple[E, ...]               # the element (or per-row) value of each output, f32
    per_row_out: bool                 # one output value per row (rows, 1)
    doc: tuple[str, ...] = field(default=())

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the output parameters: y, or y0, y1, ... for a fused group that stores several."""
        return ("y",) if len(self.outs) == 1 else tuple(f"y{k}" for k in range(len(self.outs)))

    @property
    def slices(self) -> tuple[Operand, ...]:
        return tuple(o for o in self.operands if o.layout == "slice")


def tmp(name: str) -> E:
    return E("tmp", value=name)


def lower(name: str, expr: E | tuple[E, ...], layouts: dict[str, str], nullable: dict[str, float] | None = None,
          doc: tuple[str, ...] = (), tables: bool = False) -> KernelPlan:
    """The plan of one kernel computing `expr` (or several outputs over the same view, sharing their row
    stages). layouts: input name -> layout; nullable: inputs that may be NULL at run time -> the value
    they read as then; tables: the backend looks f16_table nodes up (else they are expanded)."""
    exprs = expr if isinstance(expr, tuple) else (expr,)
    if not tables:
        exprs = tuple(P.expand_tables(e) for e in exprs)
    nullable = nullable or {}
    stages: list[Stage] = []
    done: dict[tuple[E, bool], E] = {}

    def hoist(e: E, in_row_value: bool = False) -> E:
        """e with every reduction, and every largest per-row subtree that is more than a leaf, made a
        stage (in_row_value: e is inside such a subtree, which becomes one stage as a whole)."""
        key = (e, in_row_value)
        if key in done:
            return done[key]
        if e.kind in P.REDUCE:
            arg = hoist(e.args[0])
            t = tmp(f"t{len(stages)}")
            stages.append(Stage(t.value, "sum" if e.kind == "row_sum" else "max", arg, P.dtype(e)))
            new = t
        elif not e.args:
            new = e
        else:
            row_value = P.per_row(e)
            new = E(e.kind, tuple(hoist(a, row_value) for a in e.args), e.value, e.f64)
            if row_value and not in_row_value and any(n.kind == "tmp" for n in P.walk(new)):
                t = tmp(f"t{len(stages)}")
                stages.append(Stage(t.value, "let", new, P.dtype(e)))
                new = t
        done[key] = new
        if e.kind in P.REDUCE:
            done[(e, not in_row_value)] = new
        return new

    per_row = {P.per_row(e) for e in exprs}
    if len(per_row) > 1:
        raise ValueError(f"{name}: outputs mix per-row and per-element values")
    outs = tuple(hoist(e) for e in exprs)
    names = list(dict.fromkeys(n for e in exprs for n in P.inputs_of(e)))
    operands = tuple(Operand(n, layouts[n], nullable.get(n)) for n in names)
    scalars = tuple(dict.fromkeys(a for e in exprs for a in P.attrs_of(e)))
    return KernelPlan(name, operands, scalars, tuple(stages), outs, per_row.pop(), doc)


def dtype(e: E, stages: dict[str, Stage]) -> str:
    """Type of a lowered node (`tmp` leaves take their stage's type)."""
    if e.kind == "tmp":
        return stages[e.value].dtype
    if not e.args or e.kind in ("to_f16", "to_f32", "to_f64", "le", "ge", "f16_table"):
        return P.dtype(e)
    kinds = {dtype(a, stages) for a in (e.args[1:] if e.kind == "where" else e.args)}
    return "f64" if "f64" in kinds else ("int" if kinds == {"int"} else "f32")


class Printer:
    """Prints a lowered tree in a C-like language; a backend gives function names and how to read an
    operand. Casts and literals follow C, which OpenCL C and AscendC's scalar code share."""
    unary_f32 = {"exp": "expf", "tanh": "tanhf", "sqrt": "sqrtf", "erf": "erff"}
    unary_f64 = {"exp": "exp", "tanh": "tanh", "sqrt": "sqrt", "erf": "erf"}
    round_f16 = "llmc_round_f16"

    def __init__(self, plan: KernelPlan, read):
        self.plan, self.read = plan, read            # read(operand) -> C expression of its element
        self.stages = {s.tmp: s for s in plan.stages}
        self.operands = {o.name: o for o in plan.operands}

    def __call__(self, e: E) -> str:
        k, a = e.kind, e.args
        if k == "in":
            return self.read(self.operands[e.value])
        if k in ("attr", "tmp"):
            return str(e.value)
        if k == "cols":
            return "n"
        if k == "const":
            return literal(e.value, e.f64)
        if k == "neg":
            return f"(-{self(a[0])})"
        if k == "to_f32":
            return f"(float)({self(a[0])})"
        if k == "to_f64":
            return f"(double)({self(a[0])})"
        if k == "to_f16":
            return f"{self.round_f16}({self(a[0])})"
        if k in self.unary_f32:
            table = self.unary_f64 if dtype(a[0], self.stages) == "f64" else self.unary_f32
            return f"{table[k]}({self(a[0])})"
        if k in ("max", "min"):
            fn = ("fmax" if k == "max" else "fmin") + ("" if dtype(e, self.stages) == "f64" else "f")
            return f"{fn}({self(a[0])}, {self(a[1])})"
        if k in _INFIX:
            return f"({self(a[0])} {_INFIX[k]} {self(a[1])})"
        if k == "where":
            return f"({self(a[0])} ? {self(a[1])} : {self(a[2])})"
        raise ValueError(f"cannot print expression node {k!r}")


_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "le": "<=", "ge": ">="}


def literal(value: float, f64: bool = False) -> str:
    """A float literal that reads back to the same value: 0.5f, 0.044715f, 1e-05f."""
    text = repr(float(value)) if f64 else repr(float(np.float32(value)))
    if "inf" in text:
        return ("-" if value < 0 else "") + "INFINITY"
    if "." not in text and "e" not in text:
        text += ".0"
    return text if f64 else text + "f"


# ---- from a graph node ------------------------------------------------------------------------------------

_LAYOUT_CODE = {"elem": "e", "col": "c", "row": "r", "scalar": "s", "slice": "x"}


@dataclass(frozen=True)
class NodeKernel:
    """A plan bound to graph values: which node feeds each operand, and the dims of the (rows, n) view."""
    plan: KernelPlan
    outputs: tuple[int, ...]                    # node ids written, one per plan output
    inputs: dict[str, int]                      # operand -> node id
    rows: tuple                                 # leading dims of the view (symbolic)
    n: object                                   # the row length (symbolic)
    slices: dict[str, tuple[object, object]]    # slice operand -> (row stride, offset), symbolic
    scalars: dict[str, object]                  # float parameter -> its value (symbolic)


def layout_of(shape: tuple, full: tuple) -> str | None:
    """How an input of `shape` is read for an output view of `full` (None: not a pointwise broadcast)."""
    from llmc.ir.expr import Num
    one = Num(1)
    if tuple(shape) == tuple(full):
        return "elem"
    if all(d == one for d in shape):
        return "scalar"
    if shape and shape[-1] == full[-1] and all(d == one for d in shape[:-1]) and len(shape) <= len(full):
        return "col"
    if shape and shape[-1] == one and tuple(shape[:-1]) == tuple(full[:-1]):
        return "row"
    return None


def node_kernel(graph, node, name: str | None = None, tables: bool = False) -> NodeKernel:
    """The kernel of one pointwise node (or of the fused group it runs): its definition with absent
    inputs filled in, each input's layout, and the view it runs over. tables: as `lower`'s."""
    if node.fused is not None:
        return group_kernel(graph, node.fused.group, tables)
    from llmc.ir.ops import definition
    p = definition(node.op)
    ins = graph.inputs(node.id)
    fill: dict[str, E] = {}
    present: dict[str, int] = {}
    for spec_name, nid in zip(p.inputs, list(ins) + [None] * (len(p.inputs) - len(ins))):
        key = spec_name.rstrip("?")
        if nid is None:
            fill[key] = P.const(p.absent[key])
        else:
            present[key] = nid
    expr = P.substitute(p.expr, fill) if fill else p.expr
    expr = expr if tables else P.expand_tables(expr)
    per_row_out = P.per_row(expr)
    full = graph.node(present[p.inputs[0]]).shape if per_row_out else node.shape
    layouts, nullable, slices = {}, {}, {}
    for key, nid in present.items():
        src = graph.node(nid)
        if p.name in P.SLICING:
            from llmc.ir.expr import BinOp, Num
            offset = Num(0)
            for d in node.attrs["sizes"][:int(node.attrs["part"].value)]:
                offset = BinOp("+", offset, d)
            layouts[key] = "slice"
            slices[key] = (src.shape[-1], offset)
            continue
        layout = layout_of(src.shape, full)
        if layout is None:
            raise NotImplementedError(f"{p.name}: input {key} {src.shape} does not broadcast to {full} "
                                      f"({node.loc})")
        layouts[key] = layout
        if src.attrs.get("optional"):
            if key not in p.absent:
                raise NotImplementedError(f"{p.name}: input {key} may be absent, and the op has no value for it")
            nullable[key] = p.absent[key]
    codes = "".join(_LAYOUT_CODE[layouts[k]] + ("n" if k in nullable else "") for k in present)
    doc = (f"{p.name}: {p.doc}", "generated from its definition in ir/pointwise.py")
    plan = lower(name or f"pw_{p.name}_{codes}", expr, layouts, nullable, doc, tables)
    scalars = {a: node.attrs[a] for a in plan.scalars}
    return NodeKernel(plan, (node.id,), {k: present[k] for k in (o.name for o in plan.operands)},
                      tuple(full[:-1]), full[-1], slices, scalars)


def _member_expr(graph, nid: int, exprs: dict[int, E], external: dict[int, str], layouts: dict[str, str],
                 nullable: dict[str, float], slices: dict, scalars: dict, full: tuple) -> E:
    """A member's expression over the group's operands: inputs from other members are their
    expressions, others become operands; attributes are renamed per member (two norms, two eps)."""
    from llmc.ir.expr import BinOp, Num
    from llmc.ir.ops import definition
    node = graph.node(nid)
    p = definition(node.op)
    values: dict[str, E] = {}
    ins = graph.inputs(nid)
    for spec_name, src in zip(p.inputs, list(ins) + [None] * (len(p.inputs) - len(ins))):
        key = spec_name.rstrip("?")
        if src is None:
            values[key] = P.const(p.absent[key])
        elif src in exprs:
            values[key] = exprs[src]
        else:
            sn = graph.node(src)
            if p.name in P.SLICING:
                name = f"{_ident(sn)}_part{nid}"
                offset = Num(0)
                for d in node.attrs["sizes"][:int(node.attrs["part"].value)]:
                    offset = BinOp("+", offset, d)
                layouts[name], slices[name] = "slice", (sn.shape[-1], offset)
            else:
                name = external.setdefault(src, _ident(sn))
                layouts[name] = layout_of(sn.shape, full)
                if sn.attrs.get("optional"):
                    nullable[name] = p.absent[key]
            values[key] = P.inp(name)
    for a in P.attrs_of(p.expr):
        scalars[f"{a}_{nid}"] = node.attrs[a]
        values[a] = P.attr(f"{a}_{nid}")
    return P.substitute(p.expr, values)


def _ident(node) -> str:
    import re
    base = node.label if node.label and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", node.label) else "v"
    return f"{base}_{node.id}"


def group_kernel(graph, group: int, tables: bool = False) -> NodeKernel:
    """The one kernel of a fused group: every stored member's value, as expressions over the values the
    group reads from outside. Each stored member is one output."""
    import hashlib
    from llmc.ir.expr import Num
    from llmc.ir.ops import pointwise_view
    members = graph.fused_members(group)
    # the widest view of its members: a chain through per-row values (mean, then ops on its (rows, 1)
    # result) runs over the (rows, n) rows they come from
    full = max((pointwise_view(graph, m) for m in members), key=lambda v: v[-1] != Num(1))
    exprs: dict[int, E] = {}
    external: dict[int, str] = {}
    layouts: dict[str, str] = {}
    nullable: dict[str, float] = {}
    slices: dict[str, tuple] = {}
    scalars: dict[str, object] = {}
    for m in members:
        exprs[m] = _member_expr(graph, m, exprs, external, layouts, nullable, slices, scalars, full)
    if not tables:
        exprs = {m: P.expand_tables(e) for m, e in exprs.items()}
    stored = tuple(m for m in members if graph.node(m).fused.stored)
    ops = [graph.node(m).op.value for m in members]
    key = repr(([exprs[m] for m in stored], sorted(layouts.items()), sorted(nullable.items())))
    name = "pw_" + "_".join(dict.fromkeys(ops)) + "_" + hashlib.sha1(key.encode()).hexdigest()[:6]
    doc = [f"fused: {' -> '.join(ops)}, generated from ir/pointwise.py; from the DSL:"]
    doc += [_where(graph.node(m)) for m in members]
    plan = lower(name, tuple(exprs[m] for m in stored), layouts, nullable, tuple(doc), tables)
    by_name = {v: k for k, v in external.items()}
    inputs = {o.name: by_name[o.name] if o.name in by_name else _slice_source(graph, members, o.name)
              for o in plan.operands}
    return NodeKernel(plan, stored, inputs, tuple(full[:-1]), full[-1], slices,
                      {a: scalars[a] for a in plan.scalars})


def _slice_source(graph, members: list[int], name: str) -> int:
    nid = int(name.rsplit("_part", 1)[1])
    return graph.inputs(nid)[0]


def _where(node) -> str:
    """`llama.llmc:36  x = rms_norm(h, eps=eps) * attn_norm  [%17 rms_norm_mul]`."""
    what = f"[%{node.id} {node.op.value}{' -> ' + node.label if node.label else ''}]"
    if node.loc is None:
        return what
    return f"{node.loc.comment(70)}  {what}"
