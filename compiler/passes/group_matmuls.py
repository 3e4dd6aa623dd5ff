"""group_matmuls: matmuls on one device that read the same activation run as one kernel call.

q, k and v read the same normed x, and so do a feed-forward's gate and up. Grouped, the activation is
quantized once and one thread dispatch covers all their rows: per SmolLM2 token that is 90 fewer
quantizations and barriers out of about 210.

On an OpenCL device the group quantizes the activation once and launches one kernel for all its rows
(when the members' weight types agree). Devices whose backend does not group are left alone, and so is a
matmul whose device is decided at load (node.load_choice: its host path runs alone).

Needs: a partitioned graph (node.device set). Guarantees: values unchanged (each matmul computes the same
rows); members of a group get node.matmul_group = the id of its first member, and the memory plan keeps
every member's output alive from the first member on, since the group writes them all there.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from llmc.ir.graph import Graph
from llmc.ir.ops import Op

MAX_GROUP = 4


def group_matmuls(graph: Graph, groups_on: Callable[[str], bool] = lambda device: device == "cpu") -> Graph:
    """groups_on(device): whether that device's backend runs matmul groups."""
    g = graph.copy()
    by_input: dict[tuple[int, str, str], list[int]] = defaultdict(list)
    for nid in g.order():
        n = g.node(nid)
        device = n.device or "cpu"
        if n.op is Op.MATMUL and groups_on(device) and n.load_choice is None:
            by_input[(g.inputs(nid)[0], n.region, device)].append(nid)
    for members in by_input.values():
        for start in range(0, len(members), MAX_GROUP):
            chunk = members[start:start + MAX_GROUP]
            if len(chunk) < 2:
                continue
            for nid in chunk:
                g.update(nid, matmul_group=chunk[0])
    return g
