"""The IR: a thin wrapper over networkx.DiGraph with a fixed node schema.

A model is three regions run in order: `pre` (embedding), `layer` (the repeated block, run n_layer times
with the layer index bound to `layer_var`), and `post` (final norm, lm head). A value carried from one
layer to the next enters the body through a LOOP_IN node; after the loop, post nodes read the body's last
value of it directly. Only this module touches raw networkx node attributes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from .errors import SourceLoc
from .expr import Expr
from .ops import LEAVES, SPECS, Op, Shape

if TYPE_CHECKING:
    import networkx as nx

REGIONS = ("pre", "layer", "post")


@dataclass(frozen=True)
class Fused:
    """Membership of a fused pointwise group (compiler/passes/fuse_pointwise.py): the group runs as one
    kernel, at its last member `group` (a node id); a `stored` member's value is written to memory (it is
    read outside the group), the others live only inside the kernel."""
    group: int
    stored: bool


@dataclass(frozen=True)
class LoadChoice:
    """A placement that waits for the weights file (partition_graph, compiled without one): the node runs on
    its `device` for a layer whose weight type is in `types`, else on `fallback` (the host), `reason` saying
    why; the artifact generates both paths and the runtime picks per layer at load."""
    types: tuple[str, ...]
    fallback: str
    reason: str


@dataclass(frozen=True)
class Node:
    id: int
    op: Op
    shape: Shape
    dtype: str                      # "f32", "i32", or "weight" (its GGUF type is known only at bind)
    attrs: Mapping[str, Any]
    loc: SourceLoc | None
    region: str
    label: str = ""                 # the DSL name it was assigned to, for dumps and generated comments
    device: str = ""                # set by partitioning; "" means not yet placed
    # What passes learned about the node (typed, never parsed back from strings):
    placement: str = ""             # partition_graph: why it runs on `device`
    fallback_from: str = ""         # partition_graph: the target profile it could not run on, if any
    decomposed_from: str = ""       # decompose_ops: the composite it came from, and why
    matmul_group: int | None = None  # group_matmuls: the first member of its matmul group
    fused: Fused | None = None      # fuse_pointwise
    load_choice: LoadChoice | None = None  # partition_graph without a GGUF file: device or fallback, per weight type


@dataclass(frozen=True)
class Param:
    """A hyperparameter: read from GGUF metadata (meta_key, else default), or derived (expr)."""
    name: str
    loc: SourceLoc | None
    meta_key: str | None = None      # may contain {arch}
    default: Expr | None = None
    expr: Expr | None = None
    tensor_dim: tuple[str, int] | None = None   # (GGUF tensor name, ne axis)
    # meta_period(): the key holds a period n, or one flag per layer that is read as the n flagging layer i
    # when i % n < n - 1 (ir/bind.py flags_period)
    flags_as_period: bool = False


@dataclass(frozen=True)
class Carry:
    var: str
    loop_in: int
    init: int
    next: int


@dataclass
class Graph:
    arch: str                                   # the GGUF architecture string, e.g. "llama"
    source: str = ""                            # DSL file name
    params: dict[str, Param] = field(default_factory=dict)
    layer_var: str = "i"
    layer_count: Expr | None = None
    carried: list[Carry] = field(default_factory=list)
    outputs: dict[str, int] = field(default_factory=dict)
    g: nx.DiGraph = field(default_factory=lambda: _nx().DiGraph())
    _next_id: int = 0

    # ---- building ---------------------------------------------------------------------------------
    def add(self, op: Op, inputs: list[int | None], shape: Shape, dtype: str = "f32", attrs=None,
            loc: SourceLoc | None = None, region: str = "pre", label: str = "", device: str = "") -> int:
        nid = self._next_id
        self._next_id += 1
        self.g.add_node(nid, node=Node(nid, op, tuple(shape), dtype, dict(attrs or {}), loc, region,
                                       label, device), n_inputs=len(inputs))
        for index, src in enumerate(inputs):
            if src is not None:
                self.g.add_edge(src, nid, index=index)
        return nid

    def update(self, nid: int, **changes) -> None:
        self.g.nodes[nid]["node"] = replace(self.node(nid), **changes)

    def set_inputs(self, nid: int, inputs: list[int | None]) -> None:
        for src in list(self.g.predecessors(nid)):
            self.g.remove_edge(src, nid)
        self.g.nodes[nid]["n_inputs"] = len(inputs)
        for index, src in enumerate(inputs):
            if src is not None:
                self.g.add_edge(src, nid, index=index)

    def replace_uses(self, old: int, new: int) -> None:
        """Every reader of old reads new instead (outputs and carries too)."""
        for user in list(self.g.successors(old)):
            self.set_inputs(user, [new if x == old else x for x in self.inputs(user)])
        self.outputs = {k: (new if v == old else v) for k, v in self.outputs.items()}
        self.carried = [replace(c, init=new if c.init == old else c.init, next=new if c.next == old else c.next)
                        for c in self.carried]

    def remove(self, nid: int) -> None:
        self.g.remove_node(nid)

    # ---- reading ----------------------------------------------------------------------------------
    def node(self, nid: int) -> Node:
        return self.g.nodes[nid]["node"]

    def inputs(self, nid: int) -> list[int | None]:
        ins: list[int | None] = [None] * self.g.nodes[nid]["n_inputs"]
        for src, _, data in self.g.in_edges(nid, data=True):
            ins[data["index"]] = src
        return ins

    def users(self, nid: int) -> list[int]:
        return sorted(self.g.successors(nid))

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def nodes(self) -> Iterator[Node]:
        for nid in self.order():
            yield self.node(nid)

    def order(self, region: str | None = None) -> list[int]:
        """Topological order, regions in run order, ties broken by id (creation order); the members of a
        fused group are consecutive, so that nothing outside the group runs between them."""
        nx = _nx()
        groups = {nid: self.node(nid).fused.group for nid in self.g.nodes if self.node(nid).fused is not None}
        if groups:
            blocks_of: dict[int, set[int]] = {}
            for nid in self.g.nodes:
                blocks_of.setdefault(groups.get(nid, nid), set()).add(nid)
            # given as blocks, not as a relation: networkx would test the relation on every pair of nodes
            quotient = nx.quotient_graph(self.g, list(blocks_of.values()))
            blocks = {min(block): block for block in quotient.nodes}
            contracted = nx.relabel_nodes(quotient, {block: min(block) for block in quotient.nodes})
            topo = []
            for head in nx.lexicographical_topological_sort(contracted):
                inner = self.g.subgraph(blocks[head])
                topo += list(nx.lexicographical_topological_sort(inner))
        else:
            topo = list(nx.lexicographical_topological_sort(self.g))
        rank = {r: k for k, r in enumerate(REGIONS)}
        index = {n: k for k, n in enumerate(topo)}
        ordered = sorted(topo, key=lambda n: (rank[self.node(n).region], index[n]))
        return [n for n in ordered if region is None or self.node(n).region == region]

    def fused_members(self, group: int) -> list[int]:
        """The members of a fused group, in run order (the last is `group`)."""
        return [n for n in self.order(self.node(group).region)
                if self.node(n).fused is not None and self.node(n).fused.group == group]

    def weights(self) -> list[Node]:
        return [n for n in self.nodes() if n.op is Op.WEIGHT]

    def copy(self) -> "Graph":
        new = replace(self, params=dict(self.params), carried=list(self.carried), outputs=dict(self.outputs),
                      g=self.g.copy())
        return new

    def summary(self) -> str:
        lines = []
        for n in self.nodes():
            ins = ", ".join("-" if i is None else f"%{i}" for i in self.inputs(n.id))
            shape = "(" + ", ".join(str(d) for d in n.shape) + ")"
            attrs = ", ".join(f"{k}={v}" for k, v in n.attrs.items())
            where = f"  # {n.loc}" if n.loc else ""
            dev = f" @{n.device}" if n.device else ""
            notes = [f"{k}={v}" for k, v in (("placement", n.placement), ("fallback_from", n.fallback_from),
                                             ("decomposed_from", n.decomposed_from),
                                             ("matmul_group", n.matmul_group), ("fused", n.fused),
                                             ("load_choice", n.load_choice)) if v]
            lines.append(f"[{n.region}] %{n.id} = {n.op.value}({ins}) {shape} {n.dtype}"
                         f"{' {' + attrs + '}' if attrs else ''}{dev}  {n.label}{where}"
                         + (f"  [{'; '.join(notes)}]" if notes else ""))
        return "\n".join(lines)


def _nx():
    """networkx, imported on first use: loading a compiled artifact reads params through this module and
    should not pay networkx's ~0.3 s import."""
    import networkx
    return networkx


class VerifyError(Exception):
    pass


def verify(graph: Graph) -> None:
    """Check the schema; raise VerifyError naming the node. Passes call this after every rewrite."""
    if not _nx().is_directed_acyclic_graph(graph.g):
        raise VerifyError("the graph has a cycle")
    rank = {r: k for k, r in enumerate(REGIONS)}
    for nid in graph.g.nodes:
        n = graph.node(nid)
        where = f"node %{nid} ({n.op.value}{', ' + n.label if n.label else ''}, {n.loc})"
        spec = SPECS[n.op]
        ins = graph.inputs(nid)
        if n.op in LEAVES and ins:
            raise VerifyError(f"{where}: a leaf has inputs")
        if n.op not in LEAVES and not (spec.min_inputs <= len(ins) <= len(spec.inputs)):
            raise VerifyError(f"{where}: {len(ins)} inputs, the op takes {spec.inputs}")
        for k, src in enumerate(ins):
            if src is None and not spec.inputs[k].endswith("?"):
                raise VerifyError(f"{where}: required input {spec.inputs[k]!r} is missing")
            if src is not None and rank[graph.node(src).region] > rank[n.region]:
                raise VerifyError(f"{where}: reads %{src} from a later region")
        if not isinstance(n.shape, tuple) or not all(isinstance(d, Expr) for d in n.shape):
            raise VerifyError(f"{where}: shape must be a tuple of Expr")
        if n.region not in rank:
            raise VerifyError(f"{where}: unknown region {n.region!r}")
    for c in graph.carried:
        if graph.node(c.loop_in).region != "layer" or graph.node(c.next).region != "layer":
            raise VerifyError(f"carried value {c.var!r} must enter and leave through the layer region")
    for name, nid in graph.outputs.items():
        if nid not in graph.g:
            raise VerifyError(f"output {name!r} names a removed node")


def param_to_json(p: Param) -> dict:
    from .expr import to_json
    return {"name": p.name, "meta_key": p.meta_key, "tensor_dim": list(p.tensor_dim) if p.tensor_dim else None,
            "default": to_json(p.default) if p.default is not None else None,
            "expr": to_json(p.expr) if p.expr is not None else None,
            "loc": str(p.loc) if p.loc else None, "flags_as_period": p.flags_as_period}


def param_from_json(j: dict) -> Param:
    from .expr import from_json
    return Param(j["name"], None, meta_key=j["meta_key"],
                 default=from_json(j["default"]) if j["default"] is not None else None,
                 expr=from_json(j["expr"]) if j["expr"] is not None else None,
                 tensor_dim=tuple(j["tensor_dim"]) if j["tensor_dim"] else None,
                 flags_as_period=bool(j.get("flags_as_period", False)))
