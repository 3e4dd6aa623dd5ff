"""eliminate_dead_code: drop nodes no output and no carried value depends on.

Needs: a verified graph. Guarantees: every remaining node reaches an output or a carry, except weights
another weight names as its `fallback` (the tied lm head reads token_embd through that attribute).
"""

from __future__ import annotations

import networkx as nx
from llmc.ir.graph import Graph
from llmc.ir.ops import Op

from ._util import pinned


def eliminate_dead_code(graph: Graph) -> Graph:
    graph = graph.copy()
    live = set()
    for root in pinned(graph):
        live.add(root)
        live |= nx.ancestors(graph.g, root)
    for nid in list(live):
        node = graph.node(nid)
        if node.op is Op.WEIGHT and "fallback" in node.attrs:
            live.add(node.attrs["fallback"])
    for nid in list(graph.g.nodes):
        if nid not in live:
            graph.remove(nid)
    return graph
