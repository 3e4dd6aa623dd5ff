"""insert_transfers: an explicit TRANSFER node wherever a value crosses devices.

One transfer per (value, destination device), shared by every reader on that device. It lives in the
value's region, except that a layer value read only after the loop is moved once, in `post`. A carried
value whose initial value is made on another device gets its transfer in `pre`; an output made off the
host (the device of the tokens) is moved to the host. Weights never move:
partitioning put each where its user runs.

Needs: a partitioned graph (every node has a device). Guarantees: every edge joins two nodes on the same
device, or a TRANSFER whose attrs src/dst (Num of device names) say which devices it joins.
"""

from __future__ import annotations

from dataclasses import replace

from llmc.ir import expr as X
from llmc.ir.graph import Graph
from llmc.ir.ops import Op


def insert_transfers(graph: Graph) -> Graph:
    graph = graph.copy()
    made: dict[tuple[int, str], int] = {}
    for nid in graph.order():
        node = graph.node(nid)
        if node.op is Op.TRANSFER:
            continue
        ins = graph.inputs(nid)
        new = list(ins)
        for k, src in enumerate(ins):
            if src is None or graph.node(src).op is Op.WEIGHT:
                continue
            if graph.node(src).device != node.device:
                new[k] = _transfer(graph, made, src, node.device)
        if new != ins:
            graph.set_inputs(nid, new)
    carried = []
    for c in graph.carried:
        dst = graph.node(c.loop_in).device
        if graph.node(c.init).device != dst:
            c = replace(c, init=_transfer(graph, made, c.init, dst))
        carried.append(c)
    graph.carried = carried
    host = next((n.device for n in graph.nodes() if n.op is Op.TOKENS and n.device), "cpu")
    for name, nid in list(graph.outputs.items()):  # the caller reads outputs on the host
        if graph.node(nid).device != host:
            graph.outputs[name] = _transfer(graph, made, nid, host)
    return graph


def _transfer(graph: Graph, made: dict, src: int, dst: str) -> int:
    if (src, dst) in made:
        return made[(src, dst)]
    s = graph.node(src)
    region = s.region
    readers = [u for u in graph.users(src) if graph.node(u).device == dst]
    if region == "layer" and readers and all(graph.node(u).region == "post" for u in readers):
        region = "post"
    nid = graph.add(
        Op.TRANSFER,
        [src],
        s.shape,
        s.dtype,
        {"src": X.Num(s.device), "dst": X.Num(dst)},
        s.loc,
        region,
        f"{s.label or 't' + str(src)}@{dst}",
        dst,
    )
    made[(src, dst)] = nid
    return nid
