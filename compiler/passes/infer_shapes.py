"""infer_shapes: recompute every node's shape from its inputs with the op's shape rule.

Needs: a verified graph whose leaves carry their shapes. Guarantees: every non-leaf node's shape is what
`ir.ops.infer_shape` gives for its inputs (symbolic dims stay symbolic); a mismatch is a DslError at the
node's DSL location. Runs first, and catches a rewrite that left a stale shape.
"""

from __future__ import annotations

from llmc.ir.errors import DslError
from llmc.ir.graph import Graph
from llmc.ir.ops import LEAVES, SPECS, ShapeError, infer_shape


def infer_shapes(graph: Graph) -> Graph:
    graph = graph.copy()
    for nid in graph.order():
        node = graph.node(nid)
        if node.op in LEAVES:
            continue
        shapes = [graph.node(i).shape if i is not None else None for i in graph.inputs(nid)]
        shapes += [None] * (len(SPECS[node.op].inputs) - len(shapes))  # absent optional inputs
        try:
            shape = infer_shape(node.op, shapes, node.attrs, {})
        except ShapeError as exc:
            raise DslError(f"shape mismatch: {exc}", node.loc) from None
        if shape != node.shape:
            graph.update(nid, shape=tuple(shape))
    return graph
