"""The AscendC emitter: the nodes partitioning put on an Ascend device become AscendC kernel launches.

The whole-model schedule (codegen/core/schedule.py) stays the host program. For each node on this device the
emitter writes C that calls the generated host API (`llmc_ascend.h`): one `llmc_launch_ascendc_<kernel>`
entry per kernel, which computes the kernel's tiling at run time from the dims it is given and launches it.
Into the artifact's src/ go the kernels (`llmc_ascendc_<op>_f32.cpp`, from kernels.py), the host code
(`llmc_ascend.cpp`), the CPU emulation headers (runtime/ascendc/*.h) with `ascendc_chip.h` naming the chip,
and a CMakeLists.txt for the real toolkit. On this machine the kernels compile with g++ against the emulator
into the model's own library; with -DLLMC_ASCEND_REAL the same files build for a board.

Device memory: the device's memory plan is one arena (GM) allocated at load; Q4_0/Q8_0 matmul weights are
repacked on the host once at load and uploaded; f32 vector weights (norm gains, biases) are uploaded as is.
A matmul whose weight is another type in the GGUF file (a generic artifact learns the types only at load)
runs on the CPU through host staging. A matmul is one launch for all T tokens of a step (bias included).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from llmc.codegen.core.pointwise import NodeKernel, node_kernel
from llmc.codegen.core.schedule import NO_CODE, Call, Emitter
from llmc.compiler.plan_memory import value_bytes
from llmc.ir.graph import Node
from llmc.ir.ops import POINTWISE, Op

from . import emit_attention as EA
from . import kernels as K
from . import matmul as MM
from . import pointwise as AP
from .kernels import AscendChip, AscendCodegenError, AscendKernel

EMU_DIR = Path(__file__).resolve().parents[2] / "runtime" / "ascendc"
_SOC = {3002: "Ascend310B4", 2002: "Ascend310P3", 2201: "Ascend910B4"}
_ROPE_MODE = {"norm": 0, "neox": 2}


@dataclass(frozen=True)
class Entry:
    """A kernel as the host code launches it: how to build it, its entry's C parameters, its GM arguments."""

    build: Callable[..., AscendKernel]      # (chip, **constants) with stand-in dims: sources ignore shapes
    params: str                             # C parameters after `llmc_ascend *a`
    gm: tuple[str, ...]                     # the kernel's GM arguments, in order, as C expressions


_MATMUL = ("float *y, const void *qs, const void *scales, const float *x, const float *bias, long tokens, long rows, "
           "long kdim")
_EMBED = "float *y, const void *qs, const void *scales, const int32_t *ids, long tokens, long rows, long kdim"
ENTRIES: dict[str, Entry] = {
    "rope": Entry(lambda c: K.rope(c, 1, 1, 8),
                  "float *y, const float *x, const float *cos_table, const float *sin_table, long tokens, "
                  "long heads, long head_dim, long n_dims, int neox", ("x", "cos_table", "sin_table", "y")),
    "matmul_q4_0": Entry(lambda c: MM.matmul(c, "q4_0", 8, 64), _MATMUL, ("qs", "scales", "x", "bias", "y")),
    "matmul_q8_0": Entry(lambda c: MM.matmul(c, "q8_0", 8, 64), _MATMUL, ("qs", "scales", "x", "bias", "y")),
    **{key: Entry(EA.BUILD[key], params, gm) for key, (params, gm) in EA.ENTRY_PARAMS.items()},
    **{f"embed_{q}": Entry(lambda c, q=q: MM.embed(c, q, 8, 64), _EMBED, ("qs", "scales", "ids", "y"))
       for q in ("q4_0", "q8_0")},
}
# Pointwise ops and fused chains get entries generated from their plans (AscendCEmitter._generated).
# Tiling fields the host computes outside the family's plan (kernels.py TilingField names -> C).
_EXTRA_FIELDS: dict[str, str] = {"hasBias": "bias != nullptr ? 1u : 0u", **EA.EXTRA_FIELDS}
_PLAN_FIELDS = {
    "totalLength", "tileLength", "numTiles", "tilesPerCore", "rows", "cols", "colsAligned", "rowStride",
    "rowsPerCore", "rowsPerIter", "workBytes", "tokens", "heads", "headDim", "rowWidth", "nDims", "neox",
    "tokensPerCore", "k", "groups", "groupsAligned", "qsStride", "chunkGroups", "chunkBytes", "chunkScales",
    "tokenBlock", *EA.PLAN_FIELDS,
}


def chip_of(device: str, profile: Any) -> AscendChip:
    """The AscendChip of a device profile (compiler.devices.DeviceProfile, or its dict)."""
    def get(key: str, default=None):
        if profile is None:
            return default
        if isinstance(profile, dict):
            for table in (profile, profile.get("compute", {}), profile.get("extra", {})):
                if key in table:
                    return table[key]
            return default
        if hasattr(profile, key):
            return getattr(profile, key)
        return getattr(profile, "extra", {}).get(key, default)

    arch = get("npu_arch")
    base = next((c for c in K.CHIPS.values() if c.npu_arch == arch), None) or \
        next((c for name, c in K.CHIPS.items() if device.endswith(name)), None)
    if base is None:
        raise AscendCodegenError(f"{device}: the profile names no known Ascend chip (npu_arch {arch})")
    return AscendChip(base.name, base.npu_arch, int(get("ub_bytes", base.ub_bytes) or base.ub_bytes),
                      int(get("cores", base.n_cores) or base.n_cores),
                      bool(get("has_data_copy_pad", base.has_data_copy_pad)),
                      bool(get("has_shift", base.has_shift)))


@dataclass(frozen=True)
class OpKernels:
    """One row of AscendCEmitter.KERNELS: the kernels a node of the op needs (at set-up, so that their
    sources go into the artifact) and the method writing its launches."""

    needs: Callable[..., list[tuple[str, dict]]]    # (emitter, b, node) -> [(entry key, constants)]
    call: Callable[..., Call | None]                # (emitter, b, node, where) -> the node's Call


class AscendCEmitter(Emitter):
    kind = "ascendc"
    multi_seq_attention = True      # the attention kernel reads each token's (sequence, position)
    host_memory = False   # aclrtMalloc memory: the host reaches it through aclrtMemcpy only

    def __init__(self, device: str, profile: Any = None):
        super().__init__(device, profile)
        self.chip = chip_of(device, profile)
        self.kernels: dict[str, AscendKernel] = {}
        self.node_kernels: dict[int, list[str]] = {}
        self.matrices: dict[int, str] = {}      # weight node -> field of its repacked planes
        self.vectors: dict[int, str] = {}       # weight node -> field of its device copy
        self.stage: list[str] = []              # host staging bytes of each CPU-fallback matmul
        # the profile claims `pointwise`: every pointwise node (or fused group) runs a kernel generated
        # from its plan (codegen/ascendc/pointwise.py) instead of a hand-written one
        self.generates = bool(getattr(profile, "pointwise", False) if not isinstance(profile, dict)
                              else profile.get("pointwise", False))
        self.entries: dict[str, Entry] = dict(ENTRIES)

    # ---- which kernels a node needs ---------------------------------------------------------------
    def _kernel(self, key: str, **constants) -> str:
        built = self.entries[key].build(self.chip, **constants)
        have = self.kernels.get(key)
        if have is not None and have.source != built.source:
            raise AscendCodegenError(f"{built.name}: two nodes need it with different constants {constants}")
        self.kernels[key] = built
        return built.launch_symbol

    def _keys(self, b, n: Node) -> list[tuple[str, dict]]:
        """The kernels node n launches (entry keys, with constants), from the op's row of KERNELS."""
        if n.op in NO_CODE:
            return []
        return self.kernel_of(n).needs(self, b, n)

    def _pointwise_needs(self, b, n: Node) -> list[tuple[str, dict]]:
        if not self.generates:
            raise AscendCodegenError(f"{self.device}: the profile does not claim `pointwise`, and AscendC "
                                     f"pointwise kernels are only generated ({n.op.value} %{n.id}, {n.loc})")
        if n.fused is not None and n.fused.group != n.id:
            return []                       # the group's kernel runs at its last member
        return [(self._generated(node_kernel(b.graph, n)), {})]

    def _generated(self, k: NodeKernel) -> str:
        """Register the generated kernel of a plan (once per plan name); its entry key."""
        plan = k.plan
        if plan.name not in self.entries:
            # GM pointers as gm_<name>: a plan's operand may be called `a`, like the entry's llmc_ascend *a
            params = [f"float *gm_{y}" for y in plan.outputs] + [f"const float *gm_{o.name}" for o in plan.operands]
            params += ["long rows", "long n"]
            params += [f"long {o.name}_stride, long {o.name}_offset" for o in plan.slices]
            params += [f"float {a}" for a in plan.scalars]
            # the source does not depend on the shape: a stand-in view builds it (the tile length is
            # the UB's, fixed per plan and chip; rows and n travel in the tiling)
            stand_in = dict(scalars={a: 0.0 for a in plan.scalars},
                            slices={o.name: (AP.MAX_TILE, 0) for o in plan.slices})
            self.entries[plan.name] = Entry(lambda c, plan=plan: AP.kernel(plan, c, 1, AP.MAX_TILE, **stand_in),
                                            ", ".join(params),
                                            tuple(f"gm_{v}" for v in (*plan.outputs, *(o.name for o in plan.operands))))
        return plan.name

    def _pointwise_call(self, b, n: Node, where: str) -> Call | None:
        if n.fused is not None and n.fused.group != n.id:
            return None                         # the group's kernel runs at its last member
        g = b.graph
        k = node_kernel(g, n)
        fn = self.node_kernels[n.id][0]

        def operand(nid: int) -> str:
            return self._weight_ref(b, nid) if g.node(nid).op is Op.WEIGHT else b.var(nid)
        args = [b.var(o) for o in k.outputs] + [operand(k.inputs[o.name]) for o in k.plan.operands]
        args += [f"(long)({b.numel(k.rows)})", f"(long)({b.c(k.n)})"]
        for o in k.plan.slices:
            args += [f"(long)({b.c(e)})" for e in k.slices[o.name]]
        args += [f"(float)({b.c(k.scalars[a])})" for a in k.plan.scalars]
        return Call(where, [f"if (!{fn}(m->asc, {', '.join(args)}, err, err_len)) return 0;"])

    # ---- set-up: device arena, weights, sources ---------------------------------------------------
    def setup(self, b, plan) -> None:
        g, s = b.graph, b.s
        mine = [g.node(nid) for nid in g.order() if g.node(nid).device == self.device]
        for n in mine:
            self.node_kernels[n.id] = [self._kernel(key, **c) for key, c in self._keys(b, n)]
            ins = g.inputs(n.id)
            for k, src in enumerate(ins):
                if src is None or g.node(src).op is not Op.WEIGHT:
                    continue
                field = "asc_" + b._weight_field(g.node(src))
                if (n.op is Op.MATMUL and k == 1) or (n.op is Op.EMBED and k == 0):
                    self.matrices[src] = field
                else:
                    self.vectors[src] = field
            if n.op is Op.MATMUL:
                x = ins[0]
                self.stage.append(f"{b._c_bytes(value_bytes(g, x))} + {b._c_bytes(value_bytes(g, n.id))}")
            if n.op is Op.EMBED:
                self.stage.append(b._c_bytes(value_bytes(g, n.id)))
        slots = plan.slots if plan is not None else []
        s.includes.append("llmc_ascend.h")
        s.pre.append(Call(f"start of a step on {self.device}", ["llmc_ascend_begin_step(m->asc);"]))
        s.fields += [f"llmc_ascend *asc;   /* {self.device}: {self.chip.title}, AscendC kernels */",
                     f"size_t asc_slot_off[{len(slots) + 1}];",
                     "float *asc_stage;   /* host staging of matmuls the CPU runs for the NPU partition */"]
        load = [f"/* {self.device}: the device arena (its memory plan, bytes at n_batch tokens) */", "{",
                "    size_t off = 0;"]
        for k, slot in enumerate(slots):
            load += ["    {", "        size_t bytes = 0;"]
            load += [f"        if ({b._c_bytes(size)} > bytes) bytes = {b._c_bytes(size)};" for size in slot.sizes]
            load += [f"        m->asc_slot_off[{k}] = off;", "        off += (bytes + 63) / 64 * 64;", "    }"]
        load += [f"    m->asc_slot_off[{len(slots)}] = off;",
                 "    m->asc = llmc_ascend_open(off, err, err_len);",
                 "    if (!m->asc) goto fail;", "}"]
        load += self._weight_lines(b)
        stage = ["{", "    size_t bytes = 64;"] + [f"    if ({e} > bytes) bytes = {e};" for e in self.stage] + [
            "    m->asc_stage = llmc_aligned_alloc(bytes);",
            '    if (!m->asc_stage) { llmc_fail(err, err_len, "out of memory"); goto fail; }', "}"]
        s.load_lines += load + stage
        EA.setup(self, b, mine)                 # KV caches and the step's (sequence, position) rows
        s.free_lines += ["llmc_ascend_close(m->asc);", "free(m->asc_stage);"]
        s.free_lines += [f"free(m->{f});" for nid, f in {**self.matrices, **self.vectors}.items()
                         if g.node(nid).region == "layer"]
        if plan is not None:
            for nid in g.order():
                if nid in plan.slot_of:
                    ctype = "int32_t" if g.node(nid).dtype == "i32" else "float"
                    s.buffer_lines.append(f"{ctype} *const {b.var(nid)} = ({ctype} *)(llmc_ascend_arena(m->asc) + "
                                          f"m->asc_slot_off[{plan.slot_of[nid]}]);   /* {self.device} */")
        s.sources.update(self.sources(g.source))

    def _weight_lines(self, b) -> list[str]:
        g, s = b.graph, b.s
        lines = []
        for nid, field in {**self.matrices, **self.vectors}.items():
            node = g.node(nid)
            matrix = nid in self.matrices
            if matrix:
                rows, k = b.ci(node.shape[0]), b.ci(node.shape[1])
                what = "repacked for the matmul kernels (CPU fallback if not Q4_0/Q8_0)"
                body = [(f"if (!llmc_ascend_upload_matrix(m->asc, {b.var(nid)}, {b.wtype(nid)}, {rows}, {k}, "
                        f"&m->{field}{{il}}, err, err_len)) goto fail;")]
            else:
                size = f"sizeof(float) * (size_t)({b.numel(node.shape)})"
                what = "copied to the device"
                body = [(f"if ({b.var(nid)} && !(m->{field}{{il}} = llmc_ascend_upload(m->asc, {b.var(nid)}, "
                        f"{size}, err, err_len))) goto fail;")]
            lines.append(f"/* {node.label}: {node.attrs['gguf']}, {what} */")
            if node.region == "layer":
                s.fields.append(f"llmc_ascend_matrix *{field};   /* [n_layer] */" if matrix
                                else f"float **{field};   /* [n_layer] device copies */")
                lines += [f"m->{field} = calloc((size_t)m->n_layer, sizeof *m->{field});",
                          f'if (!m->{field}) {{ llmc_fail(err, err_len, "out of memory"); goto fail; }}',
                          "for (int il = 0; il < m->n_layer; il++) {"]
                lines += ["    " + line.replace("{il}", "[il]") for line in body] + ["}"]
            else:
                s.fields.append(f"llmc_ascend_matrix {field};" if matrix else f"float *{field};")
                lines += ["{", "    const int il = 0;", "    (void)il;"]
                lines += ["    " + line.replace("{il}", "") for line in body] + ["}"]
        return lines

    # ---- per node -----------------------------------------------------------------------------------
    def _weight_ref(self, b, nid: int) -> str:
        field = self.matrices.get(nid) or self.vectors[nid]
        return f"m->{field}[il]" if b.graph.node(nid).region == "layer" else f"m->{field}"

    def emit(self, b, n: Node) -> Call | None:
        if n.op in NO_CODE:
            return None
        fn = self.node_kernels[n.id]
        where = f"{b.where(n)}  [{self.device}: {', '.join(k.removeprefix('llmc_launch_') for k in fn)}]"
        return self.kernel_of(n).call(self, b, n, where)

    def _matmul_needs(self, b, n: Node) -> list[tuple[str, dict]]:
        return [("matmul_q4_0", {}), ("matmul_q8_0", {})]

    def _matmul_call(self, b, n: Node, where: str) -> Call:
        g, v = b.graph, b.var
        x, w, bias = g.inputs(n.id)
        wn = g.node(w)
        n_in, n_out = b.ci(wn.shape[1]), b.ci(wn.shape[0])
        rows = b.numel(g.node(x).shape, -1)
        mat = self._weight_ref(b, w)
        bias_dev = self._weight_ref(b, bias) if bias is not None else "NULL"
        host_bias = [f"    if ({v(bias)}) llmc_add_f32(hy, hy, {v(bias)}, {rows}, {n_out}, 1);"] if bias else []
        return Call(where, [
            f"if ({mat}.type) {{",
            (f"    if (!llmc_ascend_matmul(m->asc, {v(n.id)}, &{mat}, {v(x)}, {rows}, {bias_dev}, err, err_len)) "
            "return 0;"),
            "} else {   /* the file's weight is not Q4_0/Q8_0: the CPU runs this matmul */",
            f"    float *hx = m->asc_stage, *hy = m->asc_stage + (size_t)({rows}) * {n_in};",
            (f"    if (!llmc_ascend_copy(m->asc, hx, {v(x)}, sizeof(float) * (size_t)({rows}) * {n_in}, "
            "LLMC_ASCEND_TO_HOST, err, err_len)) return 0;"),
            f"    llmc_matmul_any({b.wtype(w)}, m->th, hy, {v(w)}, hx, {n_in}, {n_out}, {rows}, m->scratch);",
            *host_bias,
            (f"    if (!llmc_ascend_copy(m->asc, {v(n.id)}, hy, sizeof(float) * (size_t)({rows}) * {n_out}, "
            "LLMC_ASCEND_TO_DEVICE, err, err_len)) return 0;"),
            "}",
        ])

    def _embed_needs(self, b, n: Node) -> list[tuple[str, dict]]:
        return [("embed_q4_0", {}), ("embed_q8_0", {})]

    def _embed_call(self, b, n: Node, where: str) -> Call:
        """Rows of the repacked table from the ids in the step's rows array (after the 2T (sequence, position)
        ints); a table of another type is read on the CPU and its rows copied over."""
        table = b.graph.inputs(n.id)[0]
        mat, width = self._weight_ref(b, table), b.ci(n.shape[-1])
        return Call(where, [
            f"if ({mat}.type) {{",
            f"    if (!llmc_ascend_embed(m->asc, {b.var(n.id)}, &{mat}, m->asc_rows + 2 * T, T, err, err_len)) return 0;",
            "} else {   /* the file's table is not Q4_0/Q8_0: the CPU reads the rows */",
            f"    llmc_embed_any({b.wtype(table)}, m->asc_stage, {b.var(table)}, tokens, T, {width});",
            (f"    if (!llmc_ascend_copy(m->asc, {b.var(n.id)}, m->asc_stage, sizeof(float) * (size_t)T * {width}, "
             "LLMC_ASCEND_TO_DEVICE, err, err_len)) return 0;"),
            "}"])

    def _rope_needs(self, b, n: Node) -> list[tuple[str, dict]]:
        return [("rope", {})]

    def _rope_call(self, b, n: Node, where: str) -> Call:
        g, a = b.graph, n.attrs
        x, pos, freq_factors = g.inputs(n.id)
        guard = []
        if freq_factors is not None:
            # placed here only because the GGUF file given to the compiler lacks this optional weight
            # (the profiles refuse freq_factors); a file that has it must not run on this artifact
            ff = g.node(freq_factors)
            if not (ff.op is Op.WEIGHT and ff.attrs.get("optional")):
                raise AscendCodegenError(f"%{n.id} rope: freq_factors are not supported on {self.device} ({n.loc})")
            guard = [f"    if ({b.var(freq_factors)} != NULL) {{ llmc_fail(err, err_len, \"{ff.attrs['gguf']} is in "
                     f"this file but the artifact's rope runs on {self.device}, which does not apply it (compiled "
                     f"for a file without it): recompile with this file\"); return 0; }}"]
        if (g.node(pos).device or "cpu") != self.device:
            raise AscendCodegenError(f"%{n.id} rope: positions are not on {self.device} ({n.loc})")
        p = (f"{{ .mode = {_ROPE_MODE[a['mode'].value]}, .n_dims = {b.ci(a['n_dims'])}, "
             f".base = (float)({b.c(a['base'])}), .freq_scale = (float)({b.c(a['freq_scale'])}), "
             f".ext_factor = (float)({b.c(a['ext_factor'])}), .attn_factor = (float)({b.c(a['attn_factor'])}), "
             f".beta_fast = (float)({b.c(a['beta_fast'])}), .beta_slow = (float)({b.c(a['beta_slow'])}), "
             f".n_ctx_orig = {b.ci(a['n_ctx_orig'])} }}")
        shape = n.shape
        # the tables are made on the host: read the step's positions there (in_pos) rather than back from
        # the device copy, when that copy is of the positions input
        src = g.inputs(pos)[0] if g.node(pos).op is Op.TRANSFER else None
        on_host = src is not None and g.node(src).op is Op.POSITIONS
        positions = "in_pos, 1" if on_host else f"{b.var(pos)}, 0"
        return Call(where, ["{", *guard, f"    const llmc_ascend_rope rp = {p};",
                            (f"    if (!llmc_ascend_rope_f32(m->asc, {b.var(n.id)}, {b.var(x)}, {positions}, "
                             f"{b.ci(shape[0])}, {b.ci(shape[1])}, {b.ci(shape[2])}, &rp, err, err_len)) return 0;"),
                            "}"])

    KERNELS = {Op.MATMUL: OpKernels(_matmul_needs, _matmul_call), Op.ROPE: OpKernels(_rope_needs, _rope_call),
               Op.ATTENTION: OpKernels(EA.needs, EA.call), Op.EMBED: OpKernels(_embed_needs, _embed_call),
               **dict.fromkeys(POINTWISE, OpKernels(_pointwise_needs, _pointwise_call))}

    def transfer(self, b, node: Node, to_device: bool) -> Call:
        g = b.graph
        src = g.inputs(node.id)[0]
        if to_device and g.node(src).op is Op.POSITIONS and all(g.node(u).op is Op.ROPE for u in g.users(node.id)):
            # only ropes read it, and they make their tables from the host's positions (_rope_call)
            return Call(f"{b.where(node)}  [not copied: the ropes on {self.device} read in_pos on the host]",
                        [f"(void){b.var(node.id)};"])
        if to_device and g.node(src).op is Op.TOKENS and all(g.node(u).op is Op.EMBED for u in g.users(node.id)):
            # the embedding reads the ids from the step's rows array, uploaded once (emit_attention.setup)
            return Call(f"{b.where(node)}  [not copied: the ids travel in the step's rows array]",
                        [f"(void){b.var(node.id)};"])
        size = f"(size_t)4 * (size_t)({b.numel(node.shape)})"      # f32 and i32 values
        direction = "LLMC_ASCEND_TO_DEVICE" if to_device else "LLMC_ASCEND_TO_HOST"
        return Call(f"{b.where(node)}  [copy {'to' if to_device else 'from'} {self.device}]",
                    [(f"if (!llmc_ascend_copy(m->asc, {b.var(node.id)}, {b.var(src)}, {size}, {direction}, "
                     "err, err_len)) return 0;")])

    def copy(self, b, dst: int, src: int, nbytes: str) -> list[str]:
        """A carried value lives in device memory: copied on the device (aclrtMemcpy device to device),
        queued behind the step's launches (a host memcpy there would fault on a card)."""
        return [f"if (!llmc_ascend_copy(m->asc, {b.var(dst)}, {b.var(src)}, {nbytes}, LLMC_ASCEND_ON_DEVICE, "
                "err, err_len)) return 0;"]

    # ---- artifact files ------------------------------------------------------------------------------
    def sources(self, source: str) -> dict[str, str]:
        """Every file this device adds to the artifact's src/: kernels, host code, headers, CMakeLists."""
        host = self._host_spec(source)
        files = {"ascendc_chip.h": (f"/* The chip of this artifact's AscendC kernels (read by kernel_operator.h "
                                    f"when no -D__NPU_ARCH__ is given). */\n#define __NPU_ARCH__ "
                                    f"{self.chip.npu_arch}   /* {self.chip.title} */\n")}
        for path in sorted(EMU_DIR.glob("*.h")):
            files[path.name] = path.read_text()
        for kernel in self.kernels.values():
            files[f"{kernel.name}.cpp"] = kernel.source + K._ENV.get_template("_emu_entry.cpp.j2").render(k=kernel)
        files["llmc_ascend.h"] = K._ENV.get_template("llmc_ascend.h.j2").render(h=host)
        files["llmc_ascend.cpp"] = K._ENV.get_template("llmc_ascend.cpp.j2").render(h=host)
        files["CMakeLists.txt"] = K._ENV.get_template("CMakeLists.txt.j2").render(h=host)
        return files

    def _host_spec(self, source: str) -> SimpleNamespace:
        entries = []
        for key, kernel in sorted(self.kernels.items()):
            entry = self.entries[key]
            names = [p.split()[-1].lstrip("*") for p in entry.params.split(",")]
            if kernel.recipe["family"] == "pointwise":
                fields = [SimpleNamespace(name=f.name, ctype=f.ctype, expr=_pointwise_field(f, kernel))
                          for f in kernel.tiling]
            else:
                fields = [SimpleNamespace(name=f.name, ctype=f.ctype, expr=f"p.{f.name}" if f.name in _PLAN_FIELDS
                                          else _EXTRA_FIELDS[f.name]) for f in kernel.tiling]
                missing = [f.name for f in kernel.tiling if f.name not in _PLAN_FIELDS and f.name not in _EXTRA_FIELDS]
                assert not missing and all(g in names for g in entry.gm), (key, missing)
            entries.append(SimpleNamespace(
                name=kernel.name, short=key.upper(), launch_symbol=kernel.launch_symbol, family=kernel.recipe["family"],
                recipe=SimpleNamespace(**kernel.recipe), summary=kernel.source.splitlines()[0].partition(": ")[2],
                c_params=entry.params, fields=fields, tiling_type=f"{kernel.name} tiling",
                args=[a.name for a in kernel.args], gm=[f"(uint8_t *){g}" for g in entry.gm],
                key=[_key_term(p) for p in entry.params.split(",")],
                nibbles=kernel.weight_layout == "nibbles"))
        symbol = {key: k.launch_symbol for key, k in self.kernels.items()}
        return SimpleNamespace(
            source=source, device=self.device, chip_title=self.chip.title, soc_version=_SOC[self.chip.npu_arch],
            ub_bytes=self.chip.ub_bytes, cores=self.chip.n_cores, nibbles=self.chip.has_shift,
            has_data_copy_pad=self.chip.has_data_copy_pad,
            buffer_num=K.BUFFER_NUM, max_tile_bytes=K.MAX_TILE_BYTES, max_matmul_rows=MM.MAX_MATMUL_ROWS_PER_ITER,
            max_chunk_groups=MM.MAX_CHUNK_GROUPS, max_token_block=MM.MAX_TOKEN_BLOCK, kernels=entries,
            has_matmul="matmul_q4_0" in symbol, matmul_q4_0=symbol.get("matmul_q4_0", ""),
            has_embed="embed_q4_0" in symbol, embed_q4_0=symbol.get("embed_q4_0", ""),
            embed_q8_0=symbol.get("embed_q8_0", ""),
            matmul_q8_0=symbol.get("matmul_q8_0", ""), rope=symbol.get("rope", ""))

    def manifest(self) -> dict:
        """What the manifest records about this device: its kernels (with sizes) and which node runs which."""
        return {
            "device": self.device, "chip": self.chip.title, "npu_arch": self.chip.npu_arch,
            "kernels": {k.name: {"op": k.op, "lines": k.source.count("\n"), "bytes": len(k.source)}
                        for k in self.kernels.values()},
            "nodes": {str(nid): [s.replace("llmc_launch_", "llmc_") for s in names]
                      for nid, names in self.node_kernels.items() if names},
        }


def _key_term(param: str) -> str:
    """A C parameter's part in the tiling cache key: its value, or for a pointer whether it is set."""
    name = param.split()[-1].lstrip("*")
    return f"{name} != nullptr" if "*" in param else name


def _pointwise_field(f, kernel: AscendKernel) -> str:
    """The C expression of a generated kernel's tiling field in its host entry: the tile length is the
    one codegen/ascendc/pointwise.py chose; the row split is the host's Plan; the rest are
    the entry's parameters."""
    if f.name == "tileLength":
        return str(kernel.tiling_value("tileLength"))
    if f.name in ("rows", "rowsPerCore"):
        return f"p.{f.name}"
    if f.name == "n":
        return "static_cast<uint32_t>(n)"
    if f.name == "blockAligned":
        return "aligned ? 1u : 0u"
    if f.name.endswith("_present"):
        return f"gm_{f.name.removesuffix('_present')} != nullptr ? 1u : 0u"
    if f.name.endswith(("_stride", "_offset")):
        return f"static_cast<uint32_t>({f.name})"
    return f.name
