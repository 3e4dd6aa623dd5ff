"""The host schedule every backend shares: the generated program (load, forward) that calls the kernels
in order, as a `Schedule` that codegen/c/schedule.py renders into model.c.

Python decides every name, size and call here; templates/model.c.j2 only lays them out. Dims are C
expressions over the hyperparameters, read at load time (generic artifact) or baked in as constants
(specialized to one GGUF file).

The schedule is the host program for every device. Each node is emitted by the emitter of its device's
codegen kind ("c" for the CPU; an accelerator kind adds its own buffers, set-up and kernel launches
through the hooks of `Emitter`); a TRANSFER node is emitted by the accelerator side of the copy.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from llmc.compiler.devices import WEIGHT_INPUT
from llmc.compiler.plan_memory import MemoryPlan
from llmc.ir import expr as X
from llmc.ir.errors import LlmcError
from llmc.ir.graph import Graph, Node
from llmc.ir.ops import POINTWISE, Op
from llmc.ir.quant import WEIGHT_TYPES

ROPE_MODE = {"norm": 0, "neox": 2}
TYPE_IDS = {name: t.type_id for name, t in WEIGHT_TYPES.items()}
WEIGHT_ANY, WEIGHT_F32 = 0, 1      # what a weight may be: any supported matmul type, or plain f32
_C_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Call:
    comment: str
    lines: list[str]


@dataclass
class WeightDecl:
    field: str
    gguf_format: str          # printf format of the tensor name: "blk.%d.attn_q.weight"
    fallback_format: str | None
    optional: bool
    per_layer: bool
    kind: int
    ne: list[str]             # expected ne, C expressions
    comment: str
    want_type: int = -1       # the GGUF type a specialized artifact was built for; -1 = any
    choice: tuple[str, str] | None = None   # (C condition, format): that tensor instead when it holds at load


class MissingKernel(LlmcError):
    """A node sits on a device whose backend has no kernel for its op: the device profile claims more
    than the backend generates (tests/codegen/test_dispatch.py checks every profile against its table)."""


# Ops that need no code of their own: a view (reshape), a carried value's slot (loop_in), a weight (loaded
# by the schedule), a copy between devices (emitted by the accelerator side through Emitter.transfer).
NO_CODE = frozenset({Op.LOOP_IN, Op.RESHAPE, Op.TRANSFER, Op.WEIGHT})


class Emitter:
    """Turns the nodes of one device kind into C. Subclasses override what they need.

    Dispatch is one table per backend: `KERNELS` maps each op the backend generates to the method that
    emits it (a plain function of the class body, called as f(emitter, b, node)); every op of
    ir/pointwise.py shares the method that calls its generated kernel. An op missing from the table is a
    compile error naming the op and its DSL line (`kernel_of`)."""
    kind = ""
    KERNELS: Mapping[Op, Callable] = {}
    multi_seq_attention = False   # its attention reads each token's sequence and position (llmc serve -np N)

    def __init__(self, device: str, profile: dict | None = None):
        self.device, self.profile = device, profile or {}

    def setup(self, b: "ScheduleBuilder", plan: MemoryPlan | None) -> None:
        """Add includes, struct fields, load/free lines and buffer declarations to b.s."""

    def kernel_of(self, node: Node) -> Callable:
        """The table entry of node's op, or a MissingKernel error at the node's DSL line."""
        kernel = self.KERNELS.get(node.op)
        if kernel is None:
            raise MissingKernel(f"the {self.kind} backend has no kernel for {node.op.value} (%{node.id}"
                                f"{' -> ' + node.label if node.label else ''}) on device {self.device!r}; "
                                "its device profile should not place it there", node.loc)
        return kernel

    def emit(self, b: "ScheduleBuilder", node: Node) -> "Call | None":
        raise NotImplementedError

    def transfer(self, b: "ScheduleBuilder", node: Node, to_device: bool) -> "Call":
        raise NotImplementedError(f"{self.kind} cannot copy values between devices")

    host_memory = True   # this device's values live in host memory (False: only its own copies reach them)

    def copy(self, b: "ScheduleBuilder", dst: int, src: int, nbytes: str) -> list[str]:
        """Lines that copy value src into value dst, both in this device's memory (a carried value).
        A host memcpy only for host memory: a device whose memory the host cannot touch overrides this."""
        if not self.host_memory:
            raise NotImplementedError(f"{self.kind} keeps its values in device memory: it must emit its own copy")
        return [f"memcpy({b.var(dst)}, {b.var(src)}, {nbytes});"]

    # A node placed at load (node.load_choice) runs its host path through these two copies.
    def to_host(self, b: "ScheduleBuilder", host: str, nid: int, nbytes: str) -> list[str]:
        """Lines that copy this device's value nid into host memory `host` (waiting for it)."""
        raise NotImplementedError(f"{self.kind} cannot copy values to the host")

    def to_device(self, b: "ScheduleBuilder", nid: int, host: str, nbytes: str) -> list[str]:
        """Lines that copy host memory `host` into this device's value nid."""
        raise NotImplementedError(f"{self.kind} cannot copy values from the host")

    def takes(self, op: Op, types: tuple[str, ...]) -> tuple[str, ...]:
        """Of the weight types a profile claims for op, those this backend has kernels for."""
        return types


@dataclass
class Schedule:
    arch: str
    source: str
    params: list[str]
    specialized: dict[str, Any] | None
    weights: list[WeightDecl] = field(default_factory=list)
    buffers: list[tuple[str, str, int]] = field(default_factory=list)   # (C type, name, slot)
    slot_sizes: list[list[str]] = field(default_factory=list)
    kv: list[tuple[str, str, str]] = field(default_factory=list)        # (name, row elems, comment)
    pre: list[Call] = field(default_factory=list)
    layer: list[Call] = field(default_factory=list)
    post: list[Call] = field(default_factory=list)
    n_layer: str = "1"
    n_vocab: str = "0"
    logits: str = ""
    # hooks filled by accelerator emitters
    includes: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    load_lines: list[str] = field(default_factory=list)
    free_lines: list[str] = field(default_factory=list)
    buffer_lines: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)       # extra files for the artifact's src/
    link_flags: list[str] = field(default_factory=list)          # e.g. -lOpenCL
    last_rows_only: bool = False                                  # the post region runs on T_out rows
    post_inputs: list[tuple[str, str]] = field(default_factory=list)  # (buffer, row elems) the post region reads
    multi_seq: bool = True                                        # every attention runs on the CPU
    functions: dict[str, str] = field(default_factory=dict)      # generated kernels (C), by name
    placement_lines: list[str] = field(default_factory=list)     # load: choose the device of load_choice nodes


class ScheduleBuilder:
    def __init__(self, graph: Graph, plans: dict[str, MemoryPlan], specialized: dict[str, Any] | None = None,
                 emitters: dict[str, Emitter] | None = None):
        """plans: device -> memory plan ("cpu" is the host arena); emitters: device -> emitter (the CPU's
        is made here)."""
        self.graph, self.plans, self.spec = graph, plans, specialized
        self.plan = plans["cpu"]
        self.emitters: dict[str, Emitter] = {**(emitters or {})}
        self.emitters.setdefault("cpu", emitter_for("c", "cpu"))
        self.s = Schedule(graph.arch, graph.source, list(graph.params), specialized)
        self.names: dict[int, str] = {}
        self._last_loc: tuple[str, int] | None = None
        self.in_post = False

    def where(self, node: Node) -> str:
        """A comment pointing back to the DSL: `llama.llmc:36  q = rope(...)  [%20 rope]`. DSL text is
        user input, so it is cut at the comment terminator before it reaches C."""
        what = f"%{node.id} {node.op.value}" + (f" -> {node.label}" if node.label else "")
        if node.loc is None:
            return f"[{what}] (implicit)"
        if (node.loc.file, node.loc.line) == self._last_loc:       # same DSL line as the call above
            return f"{' ' * len(os.path.basename(node.loc.file))}  ...  [{what}]"
        self._last_loc = (node.loc.file, node.loc.line)
        return f"{node.loc.comment(90)}  [{what}]"

    def device_of(self, nid: int) -> str:
        return self.graph.node(nid).device or "cpu"

    def emitter(self, device: str) -> Emitter:
        if device not in self.emitters:
            raise ValueError(f"no code generator for device {device!r}")
        return self.emitters[device]

    # ---- C expressions ----------------------------------------------------------------------------
    def c(self, e: X.Expr) -> str:
        def name(n: str) -> str:
            if n == "T":
                return "T_out" if self.in_post else "T"
            if n == "n_batch":
                return "m->n_batch"
            if n == self.graph.layer_var:
                return "il"
            if n in self.graph.params:           # before n_ctx: an arch may name a param n_ctx
                return f"HP({n})"
            if n == "n_ctx":                     # the load context, in a weight's load-time choice (an arch
                return "m->n_ctx"                # with a param of that name has none: the frontend refuses it)
            raise ValueError(f"unknown name {n!r} in generated C")
        return X.to_c(e, name)

    def ci(self, e: X.Expr) -> str:
        return f"(int)({self.c(e)})"

    def numel(self, shape, upto: int | None = None) -> str:
        dims = shape[:upto] if upto is not None else shape
        return " * ".join(f"(long)({self.c(d)})" for d in dims) or "1"

    def var(self, nid: int) -> str:
        node = self.graph.node(nid)
        if self.in_post and node.region != "post" and node.op is not Op.WEIGHT:
            # the post region runs on the last T_out rows only (see _post_is_row_wise)
            row = self.numel(node.shape[1:])
            return f"({self._name(nid)} + (size_t)(T - T_out) * {row})"
        return self._name(nid)

    def _name(self, nid: int) -> str:
        if nid not in self.names:
            node = self.graph.node(nid)
            if node.op is Op.WEIGHT:
                base = self._weight_field(node)
                self.names[nid] = f"m->{base}[il].data" if node.region == "layer" else f"m->{base}.data"
            else:
                label = node.label if node.label and _C_IDENT.match(node.label) else "t"
                self.names[nid] = f"{label}_{nid}"
        return self.names[nid]

    def _weight_field(self, node: Node) -> str:
        return f"w_{node.label}" if _C_IDENT.match(node.label) else f"w_{node.id}"

    def wtype(self, nid: int) -> str:
        node = self.graph.node(nid)
        base = self._weight_field(node)
        return f"m->{base}[il].type" if node.region == "layer" else f"m->{base}.type"

    def weight_kernel(self, family: str, nid: int) -> tuple[str, list[str]]:
        """Direct kernel name when specialized to one type, else the runtime dispatcher plus the type."""
        types = (self.spec or {}).get("weight_types", {}).get(str(nid))
        if types is not None and len(set(types)) == 1:
            return f"llmc_{family}_{types[0].lower()}", []
        return f"llmc_{family}_any", [self.wtype(nid)]

    # ---- build --------------------------------------------------------------------------------------
    def build(self) -> Schedule:
        g, s = self.graph, self.s
        s.n_layer = self.ci(g.layer_count) if g.layer_count is not None else "0"
        logits = g.node(g.outputs["logits"])
        s.n_vocab = self.ci(logits.shape[-1])
        for node in g.weights():
            self._declare_weight(node)
        for slot in self.plan.slots:
            s.slot_sizes.append([self._c_bytes(size) for size in slot.sizes])
        for nid in g.order():
            node = g.node(nid)
            if node.op is Op.WEIGHT:
                continue
            plan = next((p for p in self.plans.values() if nid in p.alias_of), None)
            if plan is not None:
                self.names[nid] = self.var(plan.alias_of[nid])
                continue
            if nid in self.plan.slot_of:
                ctype = "int32_t" if node.dtype == "i32" else "float"
                s.buffers.append((ctype, self.var(nid), self.plan.slot_of[nid]))
        for node in g.nodes():
            if node.load_choice is not None:
                self._choose_at_load(node)
        for device, emitter in self.emitters.items():
            emitter.setup(self, self.plans.get(device))
        s.last_rows_only = self._post_is_row_wise()
        for region, calls in (("pre", s.pre), ("layer", s.layer), ("post", s.post)):
            self.in_post = region == "post" and s.last_rows_only
            for nid in g.order(region):
                call = self._emit(g.node(nid))
                if call is not None:
                    calls.append(call)
        self.in_post = False
        s.multi_seq = all(self.device_of(n) == "cpu" or self.emitter(self.device_of(n)).multi_seq_attention
                          for n in g.order() if g.node(n).op is Op.ATTENTION)
        if s.last_rows_only:
            reads = {i for n in g.order("post") for i in g.inputs(n) if i is not None}
            s.post_inputs = sorted({(self._name(i), self.numel(g.node(i).shape[1:])) for i in reads
                                    if g.node(i).region != "post" and g.node(i).op is not Op.WEIGHT})
        for c in g.carried:
            size = f"sizeof(float) * {self.numel(g.node(c.loop_in).shape)}"
            copier = self.emitter(self.device_of(c.loop_in))
            s.pre.append(Call(f"carry {c.var} into the layer loop", copier.copy(self, c.loop_in, c.init, size)))
            s.layer.append(Call(f"carry {c.var} to the next layer", copier.copy(self, c.loop_in, c.next, size)))
        s.logits = self.var(g.outputs["logits"])
        return s

    # ---- placement decided at load (node.load_choice, compiler/passes/partition_graph.py) --------------
    def placed(self, node: Node) -> str:
        """The C flag that is true where node runs on its device (per layer for a layer node)."""
        return f"m->placed_{node.id}[{'il' if node.region == 'layer' else '0'}]"

    def _choose_at_load(self, node: Node) -> None:
        """Load lines that set the node's per-layer flags from its weight's types and note the choice, and
        host buffers for its host path (allocated only if some layer takes it)."""
        g, c = self.graph, node.load_choice
        w = g.node(g.inputs(node.id)[WEIGHT_INPUT[node.op]])
        weights = f"m->{self._weight_field(w)}" if w.region == "layer" else f"&m->{self._weight_field(w)}"
        n = "m->n_layer" if w.region == "layer" else "1"
        types = self.emitter(node.device).takes(node.op, c.types)
        allowed = ", ".join(str(TYPE_IDS[t]) for t in types) + ", -1"
        what = f"{node.op.value} %{node.id} " + (node.label if _C_IDENT.match(node.label or "") else self._format(
            w.attrs["gguf"]).replace("%d", "N"))
        reason = c.reason.replace("\\", "\\\\").replace('"', '\\"')
        self.s.fields += [f"unsigned char *placed_{node.id};   /* {what}: on {node.device} (1) or {c.fallback} (0), "
                          f"per layer */"]
        for k, src in enumerate(self._host_inputs(node)):
            self.s.fields.append(f"void *host_{node.id}_{k};   /* {what}: input %{src} on the host */")
            self.s.free_lines.append(f"free(m->host_{node.id}_{k});")
        self.s.fields.append(f"float *host_{node.id};   /* {what}: its output on the host */")
        self.s.free_lines += [f"free(m->host_{node.id});", f"free(m->placed_{node.id});"]
        sizes = [self._value_bytes(src) for src in self._host_inputs(node)]
        self.s.placement_lines += [
            f"/* {what}: {node.device} for {'/'.join(types)} weights, else {c.fallback} */",
            f"m->placed_{node.id} = calloc((size_t)({n}) + 1, 1);",
            f"if (!m->placed_{node.id}) {{ llmc_fail(err, err_len, \"out of memory\"); goto fail; }}",
            f"if (!llmc_place_by_type(&m->placement, \"{what}\", \"{node.device}\", \"{c.fallback}\", \"{reason}\", "
            f"{weights}, {n}, (const int[]){{ {allowed} }}, m->placed_{node.id})) {{ llmc_fail(err, err_len, "
            f"\"out of memory\"); goto fail; }}",
            f"if (!llmc_all_set(m->placed_{node.id}, {n})) {{",
            "    const int T = m->n_batch;",
            *[f"    m->host_{node.id}_{k} = llmc_aligned_alloc({size});" for k, size in enumerate(sizes)],
            f"    m->host_{node.id} = llmc_aligned_alloc({self._value_bytes(node.id)});",
            "    if (" + " || ".join([f"!m->host_{node.id}_{k}" for k in range(len(sizes))] + [f"!m->host_{node.id}"])
            + ") { llmc_fail(err, err_len, \"out of memory\"); goto fail; }",
            "}"]

    def _host_inputs(self, node: Node) -> list[int]:
        """The inputs a host path must read back from the device: values, not weights nor host-made ones."""
        out = []
        for src in self.graph.inputs(node.id):
            if src is None or self.graph.node(src).op is Op.WEIGHT or self._host_copy(src) is not None:
                continue
            out.append(src)
        return out

    def _host_copy(self, nid: int) -> int | None:
        """The host value a device value was copied from (a TRANSFER from the CPU), else None."""
        t = self.graph.node(nid)
        if t.op is Op.TRANSFER and str(t.attrs["src"].value) == "cpu":
            return self.graph.inputs(nid)[0]
        return None

    def _value_bytes(self, nid: int) -> str:
        node = self.graph.node(nid)
        return f"{'sizeof(int32_t)' if node.dtype == 'i32' else 'sizeof(float)'} * (size_t)({self.numel(node.shape)})"

    def choose(self, node: Node, device_lines: list[str]) -> list[str]:
        """A load_choice node's call: its device lines where the load placed it there, else the host path:
        inputs copied back, the CPU's kernel, the output copied to the device (where the rest reads it)."""
        em, cpu = self.emitter(node.device), self.emitter(node.load_choice.fallback)
        saved = dict(self.names)
        host = []
        for k, src in enumerate(self._host_inputs(node)):
            ctype = "int32_t" if self.graph.node(src).dtype == "i32" else "float"
            host += em.to_host(self, f"m->host_{node.id}_{k}", src, self._value_bytes(src))
            self.names[src] = f"(({ctype} *)m->host_{node.id}_{k})"
        for src in self.graph.inputs(node.id):
            if src is not None and self._host_copy(src) is not None:
                self.names[src] = self.var(self._host_copy(src))
        self.names[node.id] = f"m->host_{node.id}"
        call = cpu.emit(self, node)
        self.names = saved
        host += (call.lines if call else [])
        host += em.to_device(self, node.id, f"m->host_{node.id}", self._value_bytes(node.id))
        return ([f"if ({self.placed(node)}) {{"] + ["    " + line for line in device_lines]
                + [f"}} else {{   /* on {node.load_choice.fallback}: the file's weight type (see the load's placement notes) */"]
                + ["    " + line for line in host] + ["}"])

    ROW_WISE = POINTWISE | {Op.MATMUL, Op.WEIGHT}

    def _post_is_row_wise(self) -> bool:
        """When every op after the layer block treats token rows independently, a call that wants only
        the last token's logits (decode, and the end of a prefill) runs them on that row alone: the lm
        head is the largest matmul of a small model."""
        post = [self.graph.node(n) for n in self.graph.order("post")]
        return bool(post) and all(n.op in self.ROW_WISE and (n.op is Op.WEIGHT or n.shape[0] == X.Name("T"))
                                  for n in post) and all(n.device in ("", "cpu") for n in post)

    def _emit(self, node: Node) -> Call | None:
        if node.op is Op.TRANSFER:
            src, dst = str(node.attrs["src"].value), str(node.attrs["dst"].value)
            if src == dst:
                return None
            if dst != "cpu":
                return self.emitter(dst).transfer(self, node, to_device=True)
            return self.emitter(src).transfer(self, node, to_device=False)
        return self.emitter(self.device_of(node.id)).emit(self, node)

    def _c_bytes(self, size: X.Expr) -> str:
        return f"(size_t)({self.c(size)})"

    def _declare_weight(self, node: Node) -> None:
        g = self.graph
        fmt = self._format(node.attrs["gguf"])
        fb = g.node(node.attrs["fallback"]) if "fallback" in node.attrs else None
        users = [g.node(u) for u in g.users(node.id)]
        kind = WEIGHT_ANY if any(u.op in WEIGHT_INPUT and g.inputs(u.id)[WEIGHT_INPUT[u.op]] == node.id
                                 for u in users) else WEIGHT_F32
        ne = [self.ci(d) for d in reversed(node.shape)]
        types = (self.spec or {}).get("weight_types", {}).get(str(node.id))
        want = TYPE_IDS[types[0]] if types and len(set(types)) == 1 else -1
        self.s.weights.append(WeightDecl(self._weight_field(node), fmt, self._format(fb.attrs["gguf"]) if fb else None,
                                         bool(node.attrs.get("optional")), node.region == "layer", kind, ne,
                                         f"{node.label}: {self._names(node)}  ({os.path.basename(node.loc.file)}:{node.loc.line})", want,
                                         (self.c(node.attrs["gguf_if"]), self._format(node.attrs["gguf_then"]))
                                         if "gguf_if" in node.attrs else None))

    @staticmethod
    def _names(node: Node) -> str:
        """The weight's tensor name, or both names of a load-time choice."""
        if "gguf_then" in node.attrs:
            return f"{node.attrs['gguf_then']} or {node.attrs['gguf']}, chosen at load"
        return node.attrs["gguf"]

    def _format(self, template: str) -> str:
        # Names were checked in the frontend: letters, digits, '_', '.', '-' and {placeholders}.
        return template.replace("{arch}", self.graph.arch).replace("{" + self.graph.layer_var + "}", "%d")

# codegen kind of a device profile -> the module and class of its emitter (imported only when used, so
# that this shared core imports no backend)
EMITTER_KINDS = {"c": ("llmc.codegen.c.emit_c", "CEmitter"),
                 "opencl": ("llmc.codegen.opencl.emit", "OpenCLEmitter"),
                 "ascendc": ("llmc.codegen.ascendc.emit", "AscendCEmitter")}


def emitter_for(kind: str, device: str, profile: dict | None = None) -> Emitter:
    """The emitter of a codegen kind (the CPU's is "c", which ScheduleBuilder adds when not given)."""
    import importlib
    if kind not in EMITTER_KINDS:
        raise ValueError(f"no code generator for codegen kind {kind!r}; have {', '.join(EMITTER_KINDS)}")
    module, cls = EMITTER_KINDS[kind]
    return getattr(importlib.import_module(module), cls)(device, profile)
