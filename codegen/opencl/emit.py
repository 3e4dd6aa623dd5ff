"""The OpenCL emitter: the host side of the nodes placed on an OpenCL device, as generated C.

The model's host schedule (codegen/core/schedule.py) stays the one host program; for a device of codegen kind
"opencl" this emitter adds
  - at load: the device (llmc_ocl_open), one cl_mem per slot of the device's memory plan, every weight the
    device's nodes read uploaded once (a matmul weight's type checked against the profile, its program
    built on first use and cached on disk), the f16 KV caches and the scratch;
  - per node: one launch call (llmc_ocl_<op>, generated into llmc_ocl.c with the programs as strings),
    written by the method the table OpenCLEmitter.KERNELS gives for the node's op;
  - per TRANSFER: a write to, or a blocking read from, the device. Nothing else goes back to the host
    per token, except the logits when the device makes them.
Names of device values are this emitter's (`m-><device>_slot[k]`); the schedule's `b.var` is used only
for host values.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from llmc.codegen.core.schedule import NO_CODE, ROPE_MODE, TYPE_IDS, Call, Emitter
from llmc.codegen.core.pointwise import KernelPlan, node_kernel
from llmc.compiler.devices import WEIGHT_INPUT
from llmc.compiler.plan_memory import MemoryPlan
from llmc.ir import expr as X
from llmc.ir.graph import Node
from llmc.ir.ops import POINTWISE, Op

from . import kernels
from . import pointwise as ocl_pointwise

RUNTIME_C = Path(__file__).resolve().parents[2] / "runtime" / "c"
RUNTIME_FILES = ("llmc_opencl.h", "llmc_opencl.c")


def _c_string(text: str) -> list[str]:
    """Text as C string literal lines, one per source line."""
    out = []
    for line in text.splitlines():
        escaped = line.replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'"{escaped}\\n"')
    return out or ['""']


def host_sources(plans: Sequence[KernelPlan] = ()) -> dict[str, str]:
    """llmc_ocl.{h,c} with the model's generated kernels (plans) in the common program, and the OpenCL
    runtime files."""
    typed = [{"id": TYPE_IDS[t], "name": t.lower(), "source": _c_string(kernels.render_typed(t)),
              "act": kernels.act_kernel(t), "tiled": t in kernels.TILED_TYPES} for t in kernels.WEIGHT_TYPES]
    generated = "".join([ocl_pointwise.ROUND_F16] + [ocl_pointwise.kernel(p) for p in plans]) if plans else ""
    c = kernels.ENV.get_template("llmc_ocl.c.j2").render(
        common_source=_c_string(kernels.render_common() + generated),
        common_kernels=kernels.COMMON_KERNELS + tuple(p.name for p in plans), typed=typed,
        generated=[ocl_pointwise.launch(p) for p in plans], prefill_tile=kernels.PREFILL_TILE)
    h = kernels.ENV.get_template("llmc_ocl.h.j2").render(generated=[ocl_pointwise.declaration(p) for p in plans])
    out = {"llmc_ocl.h": h, "llmc_ocl.c": c}
    for name in RUNTIME_FILES:
        out[name] = (RUNTIME_C / name).read_text()
    return out


def _profile_get(profile: Any, key: str, default=None):
    if isinstance(profile, dict):
        return profile.get(key, default)
    return getattr(profile, key, default)


class OpenCLEmitter(Emitter):
    kind = "opencl"

    def __init__(self, device: str, profile: Any = None):
        super().__init__(device, profile)
        self.h = f"m->{device}"                # the llmc_ocl handle
        self.plan: MemoryPlan | None = None

    # ---- names --------------------------------------------------------------------------------------
    def mem(self, b, nid: int | None) -> str:
        """The cl_mem holding a value (or weight) of this device; NULL for an absent input."""
        if nid is None:
            return "NULL"
        node = b.graph.node(nid)
        if node.op is Op.WEIGHT:
            field = b._weight_field(node)
            return f"m->{self.device}_{field}[il]" if node.region == "layer" else f"m->{self.device}_{field}"
        return f"m->{self.device}_slot[{self.plan.buffer_of(nid)}]"

    def allowed_types(self, op: Op) -> list[str]:
        """Weight types this device takes for op: the profile's claim, limited to types with kernels."""
        ops = _profile_get(self.profile, "ops", {}) or {}
        rule = ops.get(op) if op in ops else ops.get(op.value)
        claimed = _profile_get(rule, "weights") if rule is not None else None
        return [t for t in kernels.WEIGHT_TYPES if claimed is None or t in claimed]

    # ---- set-up ---------------------------------------------------------------------------------------
    def setup(self, b, plan: MemoryPlan | None) -> None:
        if plan is None:
            raise ValueError(f"no memory plan for OpenCL device {self.device!r}")
        self.plan = plan
        g, s, dev, h = b.graph, b.s, self.device, self.h
        mine = [n for n in g.nodes() if n.device == dev and n.op is not Op.WEIGHT]
        s.includes += [i for i in ("llmc_opencl.h", "llmc_ocl.h") if i not in s.includes]
        generated = {}
        for n in mine:
            if n.op in POINTWISE:
                kernel = node_kernel(g, n).plan
                generated[kernel.name] = kernel
        s.sources.update(host_sources(list(generated.values())))
        if "-lOpenCL" not in s.link_flags:
            s.link_flags.append("-lOpenCL")
        n_slots = max(len(plan.slots), 1)
        s.fields += [f"llmc_ocl *{dev};   /* OpenCL device {dev!r} */",
                     f"cl_mem {dev}_slot[{n_slots}];   /* its activation slots (memory plan) */"]
        load = [f"/* OpenCL device {dev!r}: programs, activation slots, weights, KV caches, scratch */",
                f"{h} = llmc_ocl_open(err, err_len);",
                f"if (!{h}) goto fail;"]
        free = []
        for k, slot in enumerate(plan.slots):
            sizes = ", ".join(f"(size_t)({b.c(size)})" for size in slot.sizes)
            load += ["{",
                     f"    const size_t sizes[] = {{ {sizes} }};",
                     "    size_t bytes = 0;",
                     "    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) "
                     "if (sizes[i] > bytes) bytes = sizes[i];",
                     f"    m->{dev}_slot[{k}] = llmc_ocl_alloc({h}, bytes, \"{dev} slot {k}\", err, err_len);",
                     f"    if (!m->{dev}_slot[{k}]) goto fail;",
                     "}"]
            free.append(f"llmc_cl_release(m->{dev}_slot[{k}]);")
        load += self._weights(b, free)
        load += self._scratch(b, mine)
        for n in mine:
            if n.op is Op.ATTENTION:
                s.fields.append(f"cl_mem *{dev}_k{n.id}, *{dev}_v{n.id};   /* f16 KV cache of %{n.id}, per layer */")
                ks = g.node(g.inputs(n.id)[1]).shape
                head_dim = b.ci(g.node(g.inputs(n.id)[0]).shape[2])
                load += [f"if ({head_dim} > 256) {{ llmc_fail(err, err_len, \"attention %%{n.id}: head_dim %d exceeds "
                         f"the OpenCL kernel's 256\", {head_dim}); goto fail; }}",
                         "{",
                         f"    const size_t bytes = sizeof(uint16_t) * (size_t)m->n_ctx * (size_t)({b.numel(ks[1:])});",
                         f"    m->{dev}_k{n.id} = calloc((size_t)m->n_layer, sizeof(cl_mem));",
                         f"    m->{dev}_v{n.id} = calloc((size_t)m->n_layer, sizeof(cl_mem));",
                         f"    if (!m->{dev}_k{n.id} || !m->{dev}_v{n.id}) {{ llmc_fail(err, err_len, \"out of memory\"); goto fail; }}",
                         "    for (int il = 0; il < m->n_layer; il++) {",
                         f"        m->{dev}_k{n.id}[il] = llmc_ocl_alloc({h}, bytes, \"K cache\", err, err_len);",
                         f"        m->{dev}_v{n.id}[il] = llmc_ocl_alloc({h}, bytes, \"V cache\", err, err_len);",
                         f"        if (!m->{dev}_k{n.id}[il] || !m->{dev}_v{n.id}[il]) goto fail;",
                         "    }",
                         "}"]
                free += [f"for (int il = 0; m->{dev}_k{n.id} && il < m->n_layer; il++) {{",
                         f"    llmc_cl_release(m->{dev}_k{n.id}[il]);",
                         f"    llmc_cl_release(m->{dev}_v{n.id}[il]);",
                         "}",
                         f"free(m->{dev}_k{n.id});",
                         f"free(m->{dev}_v{n.id});"]
        logits = g.outputs["logits"]
        if g.node(logits).device == dev:
            # the host copy the schedule returns from: read after the node that makes the logits
            s.fields.append(f"float *{dev}_logits;   /* (n_batch, n_vocab) host copy of the logits */")
            load += [f"m->{dev}_logits = llmc_aligned_alloc(sizeof(float) * (size_t)m->n_batch * (size_t)m->n_vocab);",
                     f"if (!m->{dev}_logits) {{ llmc_fail(err, err_len, \"out of memory\"); goto fail; }}"]
            free.append(f"free(m->{dev}_logits);")
            b.names[logits] = f"m->{dev}_logits"
        s.load_lines += load
        # released before the handle (free_lines run first in llmc_model_free)
        s.free_lines += free + [f"llmc_ocl_close(m->{dev});"]

    def _weights(self, b, free: list[str]) -> list[str]:
        """Upload every weight the device's nodes read; a typed weight's type is checked first."""
        g, dev, h = b.graph, self.device, self.h
        lines = []
        for node in g.weights():
            users = [g.node(u) for u in g.users(node.id)]
            if not any(u.device == dev for u in users):
                continue
            field = b._weight_field(node)
            typed = [u for u in users if u.device == dev and u.op in WEIGHT_INPUT
                     and g.inputs(u.id)[WEIGHT_INPUT[u.op]] == node.id]
            # uploaded where some user runs on the device: always, or as the load placed them
            chosen = [u for u in users if u.device == dev]
            guard = (" || ".join(b.placed(u) for u in chosen)
                     if all(u.load_choice is not None for u in chosen) else "")
            if typed:
                op = typed[0].op
                # placed at load: the flags chose the types already; any type with kernels is taken
                types = kernels.WEIGHT_TYPES if guard else self.allowed_types(op)
                allowed = ", ".join(str(TYPE_IDS[t]) for t in types) + ", -1"
                hint = _profile_get(self.profile, "weight_message", "") or "use another weight type"
                if _profile_get(self.profile, "unsupported_weight", "fallback") == "fallback":
                    hint += ("; or compile with this GGUF file (--gguf) so that the profile can run those "
                             "ops on the CPU")
                hint = hint.replace("\\", "\\\\").replace('"', '\\"')
                check = f'"{op.value}", (const int[]){{ {allowed} }}, "{hint}"'
            else:
                check = "NULL, NULL, NULL"
            elems = b.numel(node.shape)
            if node.region == "layer":
                b.s.fields.append(f"cl_mem *{dev}_{field};   /* {node.label} per layer, on {dev} */")
                lines += [f"m->{dev}_{field} = calloc((size_t)m->n_layer, sizeof(cl_mem));",
                          f"if (!m->{dev}_{field}) {{ llmc_fail(err, err_len, \"out of memory\"); goto fail; }}",
                          "for (int il = 0; il < m->n_layer; il++) {",
                          f"    if (({guard or '1'}) && !llmc_ocl_weight({h}, &m->{field}[il], {elems}, {check}, "
                          f"&m->{dev}_{field}[il], err, err_len)) goto fail;",
                          "}"]
                free += [f"for (int il = 0; m->{dev}_{field} && il < m->n_layer; il++) "
                         f"llmc_cl_release(m->{dev}_{field}[il]);",
                         f"free(m->{dev}_{field});"]
            else:
                b.s.fields.append(f"cl_mem {dev}_{field};   /* {node.label} on {dev} */")
                lines += ["{",
                          "    const int il = 0;",
                          "    (void)il;",
                          f"    if (({guard or '1'}) && !llmc_ocl_weight({h}, &m->{field}, {elems}, {check}, "
                          f"&m->{dev}_{field}, err, err_len)) goto fail;",
                          "}"]
                free.append(f"llmc_cl_release(m->{dev}_{field});")
        return lines

    def _scratch(self, b, mine: list[Node]) -> list[str]:
        """Scratch floats: the largest matmul activation (n_batch rows) and the attention scores."""
        g = b.graph
        act, scores = ["(size_t)1"], ["(size_t)1"]
        for n in mine:
            if n.op in (Op.MATMUL, Op.MOE_MATMUL):
                act.append(f"(size_t)({b.numel(g.node(g.inputs(n.id)[0]).shape)})")
            elif n.op is Op.ATTENTION:
                qs = g.node(g.inputs(n.id)[0]).shape
                scores.append(f"(size_t)({b.numel(qs[:2])}) * (size_t)m->n_ctx")
        return ["{",
                "    const int T = m->n_batch;",
                "    size_t act = 0, scores = 0;",
                *[f"    if ({a} > act) act = {a};" for a in act],
                *[f"    if ({sc} > scores) scores = {sc};" for sc in scores],
                f"    if (!llmc_ocl_reserve({self.h}, act, scores, err, err_len)) goto fail;",
                "}"]

    # ---- per node -------------------------------------------------------------------------------------
    def transfer(self, b, node: Node, to_device: bool) -> Call:
        src = b.graph.inputs(node.id)[0]
        nbytes = f"sizeof(float) * (size_t)({b.numel(node.shape)})"
        where = f"{node.loc}  %{node.id} transfer -> {node.label}"
        if to_device:
            return Call(where, [f"llmc_ocl_write({self.h}, {self.mem(b, node.id)}, {b.var(src)}, {nbytes});"])
        return Call(where, [f"if (!llmc_ocl_read({self.h}, {b.var(node.id)}, {self.mem(b, src)}, 0, {nbytes}, "
                            "err, err_len)) return 0;"])

    def copy(self, b, dst: int, src: int, nbytes: str) -> list[str]:
        """A device-to-device copy (a carried value into the layer loop)."""
        return [f"llmc_ocl_copy({self.h}, {self.mem(b, dst)}, {self.mem(b, src)}, {nbytes});"]

    def to_host(self, b, host: str, nid: int, nbytes: str) -> list[str]:
        return [f"if (!llmc_ocl_read({self.h}, {host}, {self.mem(b, nid)}, 0, {nbytes}, err, err_len)) return 0;"]

    def to_device(self, b, nid: int, host: str, nbytes: str) -> list[str]:
        return [f"llmc_ocl_write({self.h}, {self.mem(b, nid)}, {host}, {nbytes});"]

    def takes(self, op: Op, types: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t for t in types if t in kernels.WEIGHT_TYPES)

    def emit(self, b, n: Node) -> Call | None:
        if n.op in NO_CODE:
            return None
        if n.fused is not None and n.fused.group != n.id:
            return None                         # the group's kernel runs at its last member
        lines = self.kernel_of(n)(self, b, n)
        if n.load_choice is not None:
            lines = b.choose(n, lines)           # device or host, as the load placed it
        if n.id == b.graph.outputs["logits"]:
            lines += self._read_logits(b, n)
        where = f"{n.loc}  %{n.id} {n.op.value}" + (f" -> {n.label}" if n.label else "") + f"  [{self.device}]"
        return Call(where, lines)

    def _read_logits(self, b, n: Node) -> list[str]:
        nv = b.ci(n.shape[-1])
        return [f"if (!llmc_ocl_read({self.h}, m->{self.device}_logits + (all_logits ? 0 : (size_t)(T - 1) * {nv}), "
                f"{self.mem(b, n.id)}, all_logits ? 0 : sizeof(float) * (size_t)(T - 1) * {nv}, "
                f"sizeof(float) * (size_t)(all_logits ? T : 1) * {nv}, err, err_len)) return 0;"]

    # ---- one method per op (the table KERNELS below): (b, node) -> the lines of its launch -------------
    def _embed(self, b, n: Node) -> list[str]:
        table, tokens = b.graph.inputs(n.id)
        return [f"llmc_ocl_embed({self.h}, {b.wtype(table)}, {self.mem(b, n.id)}, {self.mem(b, table)}, "
                f"{self.mem(b, tokens)}, T, {b.ci(n.shape[-1])});"]

    def _matmul(self, b, n: Node) -> list[str]:
        mem = lambda nid: self.mem(b, nid)
        if n.matmul_group is not None:
            return self._matmul_group(b, n)
        x, w, bias = b.graph.inputs(n.id)
        wn = b.graph.node(w)
        return [f"llmc_ocl_matmul({self.h}, {b.wtype(w)}, {mem(n.id)}, {mem(w)}, {mem(x)}, {mem(bias)}, "
                f"{b.ci(wn.shape[1])}, {b.ci(wn.shape[0])}, {b.numel(n.shape, -1)});"]

    def _matmul_group(self, b, n: Node) -> list[str]:
        """The first member of a matmul group launches the group (compiler/passes/group_matmuls.py): x
        quantized once and, when the file's types agree, one kernel for every member's rows."""
        g = b.graph
        if n.id != n.matmul_group:
            return []
        members = [m for m in g.order(n.region) if g.node(m).op is Op.MATMUL and g.node(m).matmul_group == n.id]
        x = g.inputs(n.id)[0]
        ws = [g.inputs(m)[1] for m in members]
        column = lambda items: ", ".join(items)
        return ["{",
                f"    const int types[] = {{ {column(b.wtype(w) for w in ws)} }};",
                f"    const cl_mem ys[] = {{ {column(self.mem(b, m) for m in members)} }};",
                f"    const cl_mem ws[] = {{ {column(self.mem(b, w) for w in ws)} }};",
                f"    const cl_mem biases[] = {{ {column(self.mem(b, g.inputs(m)[2]) for m in members)} }};",
                f"    const int n_outs[] = {{ {column(b.ci(g.node(w).shape[0]) for w in ws)} }};",
                f"    llmc_ocl_matmul_group({self.h}, {len(members)}, types, ys, ws, biases, n_outs, {self.mem(b, x)}, "
                f"{b.ci(g.node(ws[0]).shape[1])}, {b.numel(n.shape, -1)});",
                "}"]

    def _moe_matmul(self, b, n: Node) -> list[str]:
        mem = lambda nid: self.mem(b, nid)
        x, w, sel, bias = b.graph.inputs(n.id)
        wn, xs = b.graph.node(w), b.graph.node(x).shape
        return [f"llmc_ocl_moe_matmul({self.h}, {b.wtype(w)}, {mem(n.id)}, {mem(w)}, {mem(x)}, "
                f"{1 if len(xs) == 3 else 0}, {mem(sel)}, {mem(bias)}, {b.ci(wn.shape[2])}, {b.ci(wn.shape[1])}, "
                f"T, {b.ci(n.shape[1])});"]

    def _pointwise(self, b, n: Node) -> list[str]:
        mem = lambda nid: self.mem(b, nid)
        k = node_kernel(b.graph, n)
        args = [mem(o) for o in k.outputs] + [mem(k.inputs[o.name]) for o in k.plan.operands]
        args += [f"(int)({b.numel(k.rows)})", b.ci(k.n)]
        for o in k.plan.slices:
            args += [b.ci(e) for e in k.slices[o.name]]
        args += [_float(b, k.scalars[a]) for a in k.plan.scalars]
        return [f"llmc_ocl_{k.plan.name}({self.h}, {', '.join(args)});"]

    def _rope(self, b, n: Node) -> list[str]:
        a, shape = n.attrs, n.shape
        f = lambda e: _float(b, e)
        x, positions, freq_factors = b.graph.inputs(n.id)
        p = (f"{{ .mode = {ROPE_MODE[a['mode'].value]}, .n_dims = {b.ci(a['n_dims'])}, .base = {f(a['base'])}, "
             f".freq_scale = {f(a['freq_scale'])}, .ext_factor = {f(a['ext_factor'])}, "
             f".attn_factor = {f(a['attn_factor'])}, .beta_fast = {f(a['beta_fast'])}, "
             f".beta_slow = {f(a['beta_slow'])}, .n_ctx_orig = {b.ci(a['n_ctx_orig'])} }}")
        return ["{",
                f"    const llmc_rope_params rp = {p};",
                f"    llmc_ocl_rope({self.h}, {self.mem(b, n.id)}, {self.mem(b, x)}, {self.mem(b, positions)}, "
                f"{self.mem(b, freq_factors)}, T, "
                f"{b.ci(shape[1])}, {b.ci(shape[2])}, &rp);",
                "}"]

    def _attention(self, b, n: Node) -> list[str]:
        g, a, dev = b.graph, n.attrs, self.device
        mem = lambda nid: self.mem(b, nid)
        q, k, v, sinks = g.inputs(n.id)
        qs, ks = g.node(q).shape, g.node(k).shape
        return [f"llmc_ocl_attention({self.h}, {mem(n.id)}, {mem(q)}, {mem(k)}, {mem(v)}, m->{dev}_k{n.id}[il], "
                f"m->{dev}_v{n.id}[il], {mem(sinks)}, T, pos, {b.ci(qs[1])}, {b.ci(ks[1])}, {b.ci(qs[2])}, "
                f"m->n_ctx, {_float(b, a['scale'])}, {b.ci(a['window'])}, {_float(b, a['logit_cap'])});"]

    def _top_k(self, b, n: Node) -> list[str]:
        x = b.graph.inputs(n.id)[0]
        src = b.graph.node(x).shape
        return [f"llmc_ocl_top_k({self.h}, {self.mem(b, n.id)}, {self.mem(b, x)}, {b.numel(src, -1)}, "
                f"{b.ci(src[-1])}, {b.ci(n.attrs['k'])});"]

    def _gather(self, b, n: Node) -> list[str]:
        x, index = b.graph.inputs(n.id)
        src = b.graph.node(x).shape
        return [f"llmc_ocl_gather({self.h}, {self.mem(b, n.id)}, {self.mem(b, x)}, {self.mem(b, index)}, "
                f"{b.numel(src, -1)}, {b.ci(src[-1])}, {b.ci(n.shape[-1])});"]

    def _weighted_sum(self, b, n: Node) -> list[str]:
        x, weights = b.graph.inputs(n.id)
        xs = b.graph.node(x).shape
        return [f"llmc_ocl_weighted_sum({self.h}, {self.mem(b, n.id)}, {self.mem(b, x)}, {self.mem(b, weights)}, "
                f"T, {b.ci(xs[1])}, {b.ci(xs[2])});"]

    KERNELS = {Op.EMBED: _embed, Op.MATMUL: _matmul, Op.MOE_MATMUL: _moe_matmul, Op.ROPE: _rope,
               Op.ATTENTION: _attention, Op.TOPK: _top_k, Op.GATHER: _gather, Op.WEIGHTED_SUM: _weighted_sum,
               **dict.fromkeys(POINTWISE, _pointwise)}


def _float(b, e) -> str:
    """A scalar attribute as a C float expression."""
    return f"(float)({b.c(e)})"
