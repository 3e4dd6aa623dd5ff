"""fuse_pointwise: chains of elementwise and row ops between matmuls run as one generated kernel.

A pointwise op (ir/pointwise.py) joins the group of a pointwise op it reads when both run on the same
device, in the same region, over the same (rows, n) view, and the device's backend generates pointwise
kernels (its profile says `pointwise = true`). The group's kernel computes every member from the values
the group reads from outside: a residual add and the next norm read h and the attention output once and
write both h and the normed x (one pass over the activations instead of two); rms_norm·w, GLU·up, post
norms, logit caps and scales fold into their neighbours.

Members get a typed `Fused(group, stored)` (ir/graph.py): `group` is the member that runs the kernel
(the last in run order; Graph.order keeps members consecutive); `stored` members are read outside the
group (or are outputs, or carried) and get memory; the others exist only inside the kernel.

Needs: a partitioned graph. Guarantees: every value read outside a group is the value its member
computes alone, rounded the same (each member's expression is its definition); no path leaves a group
and comes back (the group can run as one step); an output of the graph ends its group, so whoever reads
it reads it after the kernel ran.
"""
from __future__ import annotations

from collections.abc import Callable

from llmc.ir.graph import Fused, Graph
from llmc.ir.ops import POINTWISE, definition, pointwise_view
from llmc.ir.pointwise import SLICING, per_row

from ._util import pinned

MAX_MEMBERS = 8          # keeps a generated kernel readable; real chains are 2-4 ops


def fuse_pointwise(graph: Graph, generates: Callable[[str], bool]) -> Graph:
    """generates(device): whether that device's backend generates pointwise kernels."""
    g = graph.copy()
    keep = pinned(g)
    outputs = set(g.outputs.values())
    groups = _groups(g, generates, outputs, row_chains=True)
    # a group whose stored values would mix per-row and per-element ones cannot be one kernel: those
    # nodes group again under the element-only rule
    mixed = {m for grp in groups if not _one_kind(g, grp, keep, outputs) for m in grp}
    if mixed:
        groups = [grp for grp in groups if not grp & mixed]
        groups += _groups(g, generates, outputs, row_chains=False, only=mixed)
    for group in groups:
        if len(group) < 2:
            continue
        inner = list(_nx().lexicographical_topological_sort(g.g.subgraph(group)))
        last = inner[-1]
        for m in group:
            g.update(m, fused=Fused(last, _stored(g, m, last, group, keep, outputs)))
    return g


def _stored(g: Graph, m: int, last: int, group: set[int], keep, outputs) -> bool:
    return m == last or m in keep or m in outputs or any(u not in group for u in g.users(m))


def _groups(g: Graph, generates, outputs, row_chains: bool, only: set[int] | None = None) -> list[set[int]]:
    group_of: dict[int, int] = {}            # node -> representative
    members: dict[int, set[int]] = {}        # representative -> nodes
    for nid in g.order():
        node = g.node(nid)
        if node.op not in POINTWISE or not generates(node.device or "cpu") or (only is not None and nid not in only):
            continue
        group_of[nid], members[nid] = nid, {nid}
        for src in dict.fromkeys(i for i in g.inputs(nid) if i is not None):
            if src not in group_of or group_of[src] == group_of[nid] or src in outputs:
                continue
            if not (_joins(g, src, nid) or (row_chains and _joins_row_chain(g, src, nid))):
                continue
            merged = members[group_of[src]] | members[group_of[nid]]
            if len(merged) > MAX_MEMBERS or not _convex(g, merged):
                continue
            rep, other = group_of[nid], group_of[src]
            for m in members.pop(other):
                group_of[m] = rep
            members[rep] = merged
    return list(members.values())


def _joins_row_chain(g: Graph, src: int, nid: int) -> bool:
    """Per-row values computed and used inside one kernel: a mean (per-row op) and the elementwise ops on
    its (rows..., 1) result (what decompose_ops makes of rms_norm where the chip lacks it: sqr, mean,
    scale, rsqrt, mul) join the group of the (rows..., n) values they come from and go back into. The
    group is checked as a whole afterwards (`_one_kind`)."""
    a, b = g.node(src), g.node(nid)
    if a.device != b.device or a.region != b.region or b.op.value in SLICING or a.op.value in SLICING:
        return False
    va, vb = pointwise_view(g, src), pointwise_view(g, nid)
    if va == vb:
        return True
    return _row_of(va, vb) or _row_of(vb, va)


def _row_of(row: tuple, full: tuple) -> bool:
    """row is (rows..., 1) of full's (rows..., n), n != 1."""
    from llmc.ir.expr import Num
    return (len(row) == len(full) and row[:-1] == full[:-1] and row[-1] == Num(1) and full[-1] != Num(1))


def _one_kind(g: Graph, group: set[int], keep, outputs) -> bool:
    """The group can be one kernel: one widest view, and its stored values are all per element of that
    view or all one per row (a kernel writes one kind)."""
    if len(group) < 2:
        return True
    views = {pointwise_view(g, m) for m in group}
    wide = [v for v in views if not any(_row_of(v, w) for w in views)]
    if len(wide) != 1:
        return False
    full = wide[0]
    last = list(_nx().lexicographical_topological_sort(g.g.subgraph(group)))[-1]
    kinds = set()
    for m in group:
        if _stored(g, m, last, group, keep, outputs):
            shape = tuple(g.node(m).shape)
            kinds.add("elem" if shape == full else "row" if _row_of(shape, full) else "other")
    return len(kinds) == 1 and "other" not in kinds


def _joins(g: Graph, src: int, nid: int) -> bool:
    """src may be computed inside nid's kernel: same device and region, and nid reads it element by
    element over the same view (a per-row value, like a mean, also as one value per row)."""
    a, b = g.node(src), g.node(nid)
    if a.device != b.device or a.region != b.region or b.op.value in SLICING:
        return False
    if per_row(definition(b.op).expr):
        return False            # a group's stored outputs are all per element (or it is a lone per-row op)
    view_a = pointwise_view(g, src)
    view_b = pointwise_view(g, nid)
    if view_a != view_b:
        return False
    if per_row(definition(a.op).expr):
        # a per-row value stays inside its group: a group's stored outputs are all per element
        return all(u == nid for u in g.users(src))
    return tuple(a.shape) == tuple(view_b)


def _convex(g: Graph, group: set[int]) -> bool:
    """No path leaves the group and re-enters it (else the group could not run as one step)."""
    outside = set()
    frontier = [u for m in group for u in g.g.successors(m) if u not in group]
    while frontier:
        n = frontier.pop()
        if n in outside:
            continue
        outside.add(n)
        frontier += [u for u in g.g.successors(n) if u not in group]
    return not any(p in outside for m in group for p in g.g.predecessors(m))


def _nx():
    import networkx
    return networkx
