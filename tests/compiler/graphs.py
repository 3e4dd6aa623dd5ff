"""Small hand-built graphs for the pass tests: (T, n) activations, one region unless a test needs more."""

from __future__ import annotations

from llmc.ir import expr as X
from llmc.ir.graph import Graph
from llmc.ir.ops import SPECS, Op, infer_shape

T, N, F = X.Name("T"), X.Num(8), X.Num(16)


def node(g: Graph, op: Op, inputs, region="layer", **attrs) -> int:
    inputs = (
        list(inputs) + [None] * (len(SPECS[op].inputs) - len(inputs))
        if op in SPECS and SPECS[op].inputs
        else inputs
    )
    full = {k: X.Num(v) if v is not None else None for k, v in SPECS[op].attrs.items()}
    full.update({k: v if isinstance(v, (X.Expr, tuple)) else X.Num(v) for k, v in attrs.items()})
    shapes = [g.node(i).shape if i is not None else None for i in inputs]
    return g.add(op, inputs, infer_shape(op, shapes, full, {}), attrs=full, region=region)


def weight(g: Graph, *shape, name="w", region="layer") -> int:
    return g.add(
        Op.WEIGHT,
        [],
        tuple(X.Num(d) if isinstance(d, int) else d for d in shape),
        "weight",
        {"gguf": f"{name}.weight", "optional": False},
        region=region,
        label=name,
    )


def activation(g: Graph, region="pre") -> int:
    """An (T, N) input: embed of tokens by an (V, N) table."""
    tok = g.add(Op.TOKENS, [], (T,), "i32", region="pre", label="tokens")
    table = weight(g, 32, N, name="table", region="pre")
    return node(g, Op.EMBED, [table, tok], region="pre")


def shape_of(g: Graph) -> list[tuple[str, tuple[str, ...]]]:
    """The graph's structure in run order: (op, input ops), for before/after comparisons."""
    out = []
    for nid in g.order():
        n = g.node(nid)
        ins = tuple(g.node(i).op.value if i is not None else "-" for i in g.inputs(nid))
        out.append((n.op.value, ins))
    return out
