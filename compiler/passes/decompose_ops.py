"""decompose_ops: split a composite op the target device lacks into primitives it has.

DECOMPOSITIONS is the table: for each composite, the steps that compute it (each step an op over the
composite's inputs and earlier steps; attribute values name the composite's attributes or are numbers).
A node is decomposed only when the profile does not run it natively and does run every step (after
decomposing steps that are themselves composites); otherwise it stays whole and partitioning sends it
to the fallback device.

Needs: a verified graph, the target's DeviceProfile. Guarantees: the same values (each composite is
defined by these steps in ir/reference.py); each new node carries the composite's location and an
node.decomposed_from naming the composite and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmc.ir import expr as X
from llmc.ir.graph import Graph
from llmc.ir.ops import Op

from ._util import add_like


@dataclass(frozen=True)
class Step:
    name: str
    op: Op
    inputs: tuple[str, ...]  # composite input names or earlier step names
    attrs: Mapping[str, Any] = None  # value: a composite attr name (str) or a number


@dataclass(frozen=True)
class Decomposition:
    inputs: tuple[str, ...]
    steps: tuple[Step, ...]  # the last step's value replaces the composite


DECOMPOSITIONS: dict[Op, Decomposition] = {
    # x / sqrt(mean(x^2) + eps), as ir/reference.py rms_norm rounds it
    Op.RMS_NORM: Decomposition(
        ("x",),
        (
            Step("sq", Op.SQR, ("x",)),
            Step("ms", Op.MEAN, ("sq",)),  # (..., 1)
            Step("var", Op.SCALE, ("ms",), {"scale": 1.0, "bias": "eps"}),
            Step("r", Op.RSQRT, ("var",)),
            Step("y", Op.MUL, ("x", "r")),  # r broadcast along the last axis
        ),
    ),
    Op.RMS_NORM_MUL: Decomposition(
        ("x", "w"),
        (
            Step("n", Op.RMS_NORM, ("x",), {"eps": "eps"}),
            Step("y", Op.MUL, ("n", "w")),
        ),
    ),
    Op.SWIGLU: Decomposition(
        ("gate", "up"),
        (
            Step("s", Op.SILU, ("gate",)),
            Step("y", Op.MUL, ("s", "up")),
        ),
    ),
}


def decomposable(op: Op, runs) -> bool:
    """Every step of op's decomposition runs natively (runs(op) -> bool), or decomposes in turn."""
    d = DECOMPOSITIONS.get(op)
    return d is not None and all(runs(s.op) or decomposable(s.op, runs) for s in d.steps)


def decompose_ops(graph: Graph, profile, context=None) -> Graph:
    """context: the partition context (weight types, hyperparameters) that supports() takes."""
    from .partition_graph import native

    graph = graph.copy()

    def runs(op: Op) -> bool:
        return op in profile.ops and profile.ops[op].native

    changed = True
    while changed:
        changed = False
        for nid in graph.order():
            node = graph.node(nid)
            if node.op not in DECOMPOSITIONS:
                continue
            ok, reason = native(graph, nid, profile, context)
            if ok or not decomposable(node.op, runs):
                continue
            _expand(graph, nid, f"{node.op.value} on {profile.name}: {reason}")
            changed = True
    return graph


def _expand(graph: Graph, nid: int, why: str) -> None:
    node = graph.node(nid)
    d = DECOMPOSITIONS[node.op]
    ins = graph.inputs(nid)
    values: dict[str, int | None] = dict(zip(d.inputs, ins))
    for k, step in enumerate(d.steps):
        attrs = {
            name: (node.attrs[v] if isinstance(v, str) else X.Num(v))
            for name, v in (step.attrs or {}).items()
        }
        last = k == len(d.steps) - 1
        values[step.name] = add_like(
            graph, node, step.op, [values[i] for i in step.inputs], attrs, label=node.label if last else ""
        )
        graph.update(values[step.name], decomposed_from=why)
    graph.replace_uses(nid, values[d.steps[-1].name])
    graph.remove(nid)
