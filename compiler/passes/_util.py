"""Small helpers the passes share: building a node whose shape comes from its op's shape rule."""

from __future__ import annotations

from collections.abc import Mapping

from llmc.ir.errors import DslError
from llmc.ir.expr import Expr
from llmc.ir.graph import Graph, Node
from llmc.ir.ops import Op, ShapeError, infer_shape


def add_like(
    graph: Graph,
    like: Node,
    op: Op,
    inputs: list[int | None],
    attrs: Mapping[str, Expr] | None = None,
    label: str = "",
    device: str | None = None,
) -> int:
    """A new node in like's region, at like's DSL location, with the shape its op's rule gives."""
    shapes = [graph.node(i).shape if i is not None else None for i in inputs]
    try:
        shape = infer_shape(op, shapes, dict(attrs or {}), {})
    except ShapeError as exc:
        raise DslError(f"shape mismatch in a {op.value} made from %{like.id}: {exc}", like.loc) from None
    return graph.add(
        op,
        inputs,
        shape,
        "i32" if op is Op.TOPK else "f32",
        dict(attrs or {}),
        like.loc,
        like.region,
        label,
        like.device if device is None else device,
    )


def is_vector_weight(graph: Graph, nid: int | None, length: Expr) -> bool:
    """nid is a 1-D weight of `length` elements (a norm gain or a bias)."""
    if nid is None:
        return False
    node = graph.node(nid)
    return node.op is Op.WEIGHT and len(node.shape) == 1 and node.shape[0] == length


def pinned(graph: Graph) -> set[int]:
    """Values something outside the edges reads: outputs and the three ends of every carry."""
    keep = set(graph.outputs.values())
    for c in graph.carried:
        keep |= {c.loop_in, c.init, c.next}
    return keep
