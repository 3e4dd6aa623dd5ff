"""Static memory plan: every activation gets a slot in one arena; values whose lifetimes don't overlap share.

Sizes stay symbolic (they depend on hyperparameters and on n_batch, the most tokens one forward call
takes), so a slot's size is the max of its members' size expressions; the runtime evaluates them and
aligns every slot to the device's alignment. Reshapes and same-device transfers alias their input.

With `device` given, only the values placed on that device are planned (a transfer into the device is
that device's copy of the value); with device=None the whole graph shares one address space (the CPU,
or the C target standing in for every device), so every transfer aliases its input.

Lifetimes run over the linear order pre + layer + post, with two rules for the loop: a value made
before the layer block and read inside it lives to the end of the block (every iteration reads it),
and a carried value's slot lives through the whole block.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from llmc.ir import expr as X
from llmc.ir.graph import Graph
from llmc.ir.ops import Op

BATCH = X.Name("n_batch")       # the planned T: the most tokens one forward call may carry
ALIAS_OPS = (Op.RESHAPE, Op.TRANSFER)


@dataclass
class Slot:
    sizes: list[X.Expr] = field(default_factory=list)   # bytes of each member; the slot holds the largest
    members: list[int] = field(default_factory=list)


@dataclass
class MemoryPlan:
    slots: list[Slot]
    slot_of: dict[int, int]          # value node -> slot
    alias_of: dict[int, int]         # aliasing node -> the node whose buffer it shares
    lifetime: dict[int, tuple[int, int]]
    device: str | None = None
    alignment: int = 64

    def bytes(self, env) -> int:
        """Arena bytes under env (hyperparameters and n_batch): each slot its largest member, aligned."""
        total = 0
        for slot in self.slots:
            size = max(int(s.eval(env)) for s in slot.sizes)
            total += -(-size // self.alignment) * self.alignment
        return total

    def buffer_of(self, nid: int) -> int:
        while nid in self.alias_of:
            nid = self.alias_of[nid]
        return self.slot_of[nid]

    def overlaps(self) -> list[tuple[int, int]]:
        """Pairs of values sharing a slot while both alive; empty for a correct plan (tests use this)."""
        bad = []
        for slot in self.slots:
            for a in slot.members:
                for b in slot.members:
                    if a < b:
                        (s1, e1), (s2, e2) = self.lifetime[a], self.lifetime[b]
                        if s1 <= e2 and s2 <= e1:
                            bad.append((a, b))
        return bad


def value_bytes(graph: Graph, nid: int) -> X.Expr:
    size: X.Expr = X.Num(4)                              # f32 and i32 are both 4 bytes
    for d in graph.node(nid).shape:
        d = BATCH if d == X.Name("T") else _subst_t(d)
        size = X.BinOp("*", size, d)
    return size


def _subst_t(e: X.Expr) -> X.Expr:
    if e == X.Name("T"):
        return BATCH
    if isinstance(e, X.BinOp):
        return X.BinOp(e.op, _subst_t(e.left), _subst_t(e.right))
    return e


def value_device(graph: Graph, nid: int) -> str:
    """The device whose memory holds a value: a transfer's destination, else the node's device."""
    node = graph.node(nid)
    if node.op is Op.TRANSFER:
        return str(node.attrs["dst"].value)
    return node.device or "cpu"


def plan_memory(graph: Graph, device: str | None = None, alignment: int = 64) -> MemoryPlan:
    """Plan the values of one device (all values when device is None: one address space)."""
    order = graph.order()
    pos = {nid: k for k, nid in enumerate(order)}
    layer = [pos[n] for n in graph.order("layer")]
    layer_start, layer_end = (min(layer), max(layer)) if layer else (0, -1)
    alias_of = {n: graph.inputs(n)[0] for n in order
                if graph.node(n).op in ALIAS_OPS and (device is None or _same_device(graph, n))}

    def root(n):
        while n in alias_of:
            n = alias_of[n]
        return n

    # a fused member that is not stored lives only inside its group's kernel
    values = [n for n in order if graph.node(n).op is not Op.WEIGHT and n not in alias_of
              and (device is None or value_device(graph, n) == device)
              and (graph.node(n).fused is None or graph.node(n).fused.stored)]
    life = {n: [pos[n], pos[n]] for n in values}
    # a matmul group (compiler/passes/group_matmuls.py) writes every member's output at its first member
    for n in values:
        group = graph.node(n).matmul_group
        if group is not None and group in pos:
            life[n][0] = min(life[n][0], pos[group])
    for n in order:
        for src in graph.inputs(n):
            if src is None or graph.node(src).op is Op.WEIGHT:
                continue
            r = root(src)
            if r not in life:
                continue                        # another device's value
            use = pos[n]
            fused = graph.node(n).fused
            if fused is not None:
                use = pos[fused.group]          # the group's kernel reads its inputs when it runs
            if graph.node(r).region == "pre" and graph.node(n).region == "layer":
                use = layer_end
            life[r][1] = max(life[r][1], use)
    for c in graph.carried:
        for nid, lo, hi in ((c.loop_in, layer_start, layer_end), (c.next, None, layer_end), (c.init, None, layer_start)):
            r = root(nid)
            if r in life:
                life[r] = [lo if lo is not None else life[r][0], max(life[r][1], hi)]
    for nid in graph.outputs.values():
        if root(nid) in life:
            life[root(nid)][1] = len(order)

    slots: list[Slot] = []
    slot_of: dict[int, int] = {}
    busy_until: list[int] = []
    for n in sorted(values, key=lambda v: life[v][0]):
        start, end = life[n]
        size = value_bytes(graph, n)
        free = [k for k, until in enumerate(busy_until) if until < start]
        same = [k for k in free if size in slots[k].sizes]
        k = (same or free or [None])[0]
        if k is None:
            k = len(slots)
            slots.append(Slot())
            busy_until.append(-1)
        if size not in slots[k].sizes:
            slots[k].sizes.append(size)
        slots[k].members.append(n)
        busy_until[k] = end
        slot_of[n] = k
    return MemoryPlan(slots, slot_of, alias_of, {n: tuple(v) for n, v in life.items()}, device, alignment)


def _same_device(graph: Graph, nid: int) -> bool:
    node = graph.node(nid)
    return node.op is Op.RESHAPE or node.attrs.get("src") == node.attrs.get("dst")
