"""fuse_ops: rewrite op pairs into one op, from the FUSIONS table.

Each rule names a root op, the op of the producer feeding one of its inputs, and what the root's other
input must be; the root is rewritten in place (same id, label, location, users) into the fused op and
the producer, now unused, is dropped.

Needs: a verified, unpartitioned graph. Guarantees: the same values at every output and carry (each fused
op is defined as its pair, rounded as two ops: ir/reference.py); a producer read by anything else than
the root, or pinned as an output or carry, is never fused away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmc.ir.graph import Graph
from llmc.ir.ops import Op

from ._util import is_vector_weight, pinned


@dataclass(frozen=True)
class Fusion:
    name: str
    root: Op  # the second op of the pair
    producer: Op  # the first op, feeding input 0 or 1 of root (ADD and MUL commute)
    other: Callable[[Graph, int, int | None], bool]  # (graph, producer id, other input id) -> may fuse
    fused: Op
    inputs: tuple[str, ...]  # fused inputs: "producer.<k>" (the producer's k-th input) or "other"
    why: str


def _weight_like_last_dim(graph: Graph, producer: int, other: int | None) -> bool:
    return is_vector_weight(graph, other, graph.node(producer).shape[-1])


def _bias_free_and_vector(graph: Graph, producer: int, other: int | None) -> bool:
    return graph.inputs(producer)[2] is None and _weight_like_last_dim(graph, producer, other)


def _same_shape_activation(graph: Graph, producer: int, other: int | None) -> bool:
    return (
        other is not None
        and graph.node(other).op is not Op.WEIGHT
        and graph.node(other).shape == graph.node(producer).shape
    )


FUSIONS: tuple[Fusion, ...] = (
    Fusion(
        "rms_norm_mul",
        Op.MUL,
        Op.RMS_NORM,
        _weight_like_last_dim,
        Op.RMS_NORM_MUL,
        ("producer.0", "other"),
        "one pass over x instead of two (llmc_rms_norm_mul_f32)",
    ),
    Fusion(
        "matmul_bias",
        Op.ADD,
        Op.MATMUL,
        _bias_free_and_vector,
        Op.MATMUL,
        ("producer.0", "producer.1", "other"),
        "the bias is added by the matmul call",
    ),
    Fusion(
        "swiglu",
        Op.MUL,
        Op.SILU,
        _same_shape_activation,
        Op.SWIGLU,
        ("producer.0", "other"),
        "silu(g) * u in one kernel",
    ),
)


def fuse_ops(graph: Graph, rules: tuple[Fusion, ...] = FUSIONS) -> Graph:
    graph = graph.copy()
    keep = pinned(graph)
    for rule in rules:
        for nid in graph.order():
            if nid not in graph.g or graph.node(nid).op is not rule.root:
                continue
            ins = graph.inputs(nid)
            for slot in (0, 1):
                producer, other = ins[slot], ins[1 - slot]
                if producer is None or graph.node(producer).op is not rule.producer:
                    continue
                if graph.users(producer) != [nid] or producer in keep:
                    continue
                if not rule.other(graph, producer, other):
                    continue
                _rewrite(graph, nid, producer, other, rule)
                break
    return graph


def _rewrite(graph: Graph, root: int, producer: int, other: int | None, rule: Fusion) -> None:
    p_ins = graph.inputs(producer)
    new_inputs = [other if src == "other" else p_ins[int(src.split(".")[1])] for src in rule.inputs]
    attrs = {**graph.node(producer).attrs, **graph.node(root).attrs}
    graph.update(root, op=rule.fused, attrs=attrs)
    graph.set_inputs(root, new_inputs)
    graph.remove(producer)
