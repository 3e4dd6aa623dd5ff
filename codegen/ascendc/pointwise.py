"""AscendC vector kernels of pointwise ops and fused chains: prints a plan of codegen/core/pointwise.py.

Every row a core owns runs the plan's stages, then writes its outputs; each pass over the row moves
`tileLength` elements at a time through the Unified Buffer (UB):

    row stage "sum"/"max": per tile, the stage's expression into a UB tile, ReduceSum/ReduceMax over the
                           tile, the tile's partial added (or maxed) into a per-row float;
    row stage "let":       the per-row value, computed on one 32-byte block (8 floats) with the same vector
                           APIs and read back with GetValue;
    outputs:               per tile, each output's expression into its output tile, copied out to GM.

An expression node becomes one vector instruction over the tile (Add/Sub/Mul/Div/Max/Min, their scalar
forms Adds/Muls/Maxs/Mins, Exp, Sqrt, Compares + Select for `where`, Cast f32->f16->f32 for `to_f16`).
Values the same for the whole row (attributes, constants, n, per-row stages and per-row inputs) stay
scalars and fold into the scalar forms. Only basic APIs every chip lists are used (docs/ascendc.md §2):
tanh is 1 - 2 / (exp(2x) + 1) since 310B has no Tanh; `erf` has no vector form and is refused.

Data moves with DataCopyPad where the chip has it (310B, 910B: ragged tiles and unaligned offsets are
routine here: slices, odd n). 310P lacks it (docs/ascendc.md §11): a view whose rows, slice strides and
offsets are whole 32-byte blocks (the usual case) moves with plain DataCopy on every core; any other view
(a 4-expert router row, one float per row) runs on one core and moves through a staging block: an aligned
DataCopy of the covering blocks, the scalar unit shifting elements into place, and read-modify-write of
the edge blocks on the way out (one core, so no other core shares those blocks).
Numerics: the vector unit has no double, so the plan's f64 sums are float sums of per-tile tree partials
(ggml sums in double; the tests state the tolerance). The tiling (tile length, rows per core) is
computed here, once, and travels in the tiling struct.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from types import SimpleNamespace

from llmc.codegen.core.pointwise import KernelPlan, literal
from llmc.ir.pointwise import E

from .kernels import (PREFIX, AscendChip, AscendCodegenError, AscendKernel, KernelArg, TilingField, _ENV,
                      _ceil_div, _round_up)
from .vector import Block, Scalar, Tensor, Unsupported

LANES = 64             # floats in one 256-byte vector repeat; Compares counts are whole repeats
BLOCK = 8              # floats in one 32-byte UB block: the length of a per-row ("let") computation
MAX_TILE = 4096        # floats per tile: longer tiles only lengthen the pipeline fill
UNSUPPORTED = ("erf",)  # no AscendC basic API, and no exact composition of basic ones


def supports(plan: KernelPlan) -> str | None:
    """None when the generator covers the plan, else the reason it does not."""
    from llmc.ir.pointwise import walk
    for e in (*(s.expr for s in plan.stages), *plan.outs):
        for node in walk(e):
            if node.kind in UNSUPPORTED:
                return f"{node.kind} has no AscendC vector instruction (no {node.kind.capitalize()} basic API)"
    return None


# ---- the kernel -------------------------------------------------------------------------------------------

def _is_tensor(layout: str) -> bool:
    return layout in ("elem", "col", "slice")


def _gm_offset(o, col: str) -> str:
    return {"elem": f"row * tiling_.n + {col}", "col": col,
            "slice": f"row * tiling_.{o.name}_stride + tiling_.{o.name}_offset + {col}"}[o.layout]


@dataclass(frozen=True)
class _Source:
    text: str
    temps: int           # scratch tiles the widest expression needs
    masks: int           # Compare masks the widest expression needs
    fields: tuple[tuple[str, str], ...]   # tiling fields after the shape fields: (ctype, name)


def _source(plan: KernelPlan, name: str, chip: AscendChip) -> _Source:
    tensors = [o for o in plan.operands if _is_tensor(o.layout)]
    scalars_in = [o for o in plan.operands if not _is_tensor(o.layout)]
    fields = [("uint32_t", f"{o.name}_{f}") for o in plan.slices for f in ("stride", "offset")]
    fields += [("uint32_t", f"{o.name}_present") for o in plan.operands if o.absent is not None]
    fields += [("float", a) for a in plan.scalars]
    if not chip.has_data_copy_pad:
        fields.append(("uint32_t", "blockAligned"))     # 1: plain DataCopy on every core; 0: one core, staged
    temps = masks = 0
    body: list[str] = []
    ind = " " * 12

    def row_scalars() -> dict[str, object]:
        return {o.name: Scalar(f"{o.name}_r") for o in scalars_in}

    # per-row inputs: one float each, read once per row
    for o in scalars_in:
        read = f"{o.name}Gm_.GetValue({'row' if o.layout == 'row' else '0'})"
        if o.absent is not None:
            read = f"(tiling_.{o.name}_present ? {read} : {literal(o.absent)})"
        body.append(f"{ind}const float {o.name}_r = {read};")

    def tile_loop(expr_of, finish, used: set[str]) -> None:
        """A loop over the row's tiles: load the tensor operands `used`, print expressions, finish."""
        nonlocal temps, masks
        body.append(f"{ind}for (uint32_t col = 0; col < tiling_.n; col += tiling_.tileLength) {{")
        inner = ind + "    "
        body.append(f"{inner}const uint32_t rest = tiling_.n - col;")
        body.append(f"{inner}const int32_t len = static_cast<int32_t>(rest < tiling_.tileLength ? rest : tiling_.tileLength);")
        pad_at = len(body)
        ops = {**row_scalars()}
        for o in tensors:
            if o.name in used:
                body.append(f"{inner}Load{o.name}(row, col, len);")
        for o in tensors:
            if o.name in used:
                body.append(f"{inner}LocalTensor<float> {o.name}T = {o.name}Queue_.DeQue<float>();")
                ops[o.name] = Tensor(f"{o.name}T")
        blk = Block("len", "padLen", ops, body, inner)
        expr_of(blk)
        if blk.masks:   # Compare/Select count whole 256-byte repeats; lanes past len are never stored
            body.insert(pad_at, f"{inner}const uint32_t padLen = (static_cast<uint32_t>(len) + {LANES - 1}) / {LANES} * {LANES};")
        finish(blk, inner)
        for o in tensors:
            if o.name in used:
                body.append(f"{inner}{o.name}Queue_.FreeTensor({o.name}T);")
        temps, masks = max(temps, blk.temps), max(masks, blk.masks)
        body.append(f"{ind}}}")

    from llmc.ir.pointwise import walk

    def used_by(*exprs: E) -> set[str]:
        return {n.value for e in exprs for n in walk(e) if n.kind == "in"}

    for st in plan.stages:
        if st.kind == "let":
            body += [f"{ind}float {st.tmp};", f"{ind}{{"]
            blk = Block(str(BLOCK), str(LANES), row_scalars(), body, ind + "    ")
            v = blk(st.expr)
            if isinstance(v, Tensor):
                i2 = ind + "    "
                body += [f"{i2}SetFlag<HardEvent::V_S>(EVENT_ID0);", f"{i2}WaitFlag<HardEvent::V_S>(EVENT_ID0);",
                         f"{i2}{st.tmp} = {v.name}.GetValue(0);",
                         f"{i2}SetFlag<HardEvent::S_V>(EVENT_ID0);", f"{i2}WaitFlag<HardEvent::S_V>(EVENT_ID0);"]
            else:
                body.append(f"{ind}    {st.tmp} = {v.code};")
            body.append(f"{ind}}}")
            temps, masks = max(temps, blk.temps), max(masks, blk.masks)
            continue
        start = "0.0f" if st.kind == "sum" else "-INFINITY"
        body.append(f"{ind}float {st.tmp} = {start};")
        api = "ReduceSum" if st.kind == "sum" else "ReduceMax"
        holder: dict = {}

        def expr_of(blk, st=st):
            holder["v"] = blk.tensor(blk(st.expr))

        def finish(blk, inner, st=st, api=api):
            body.append(f"{inner}{api}(reduced_, {holder['v'].name}, reduceWork_, len);")
            body.append(f"{inner}SetFlag<HardEvent::V_S>(EVENT_ID0);")
            body.append(f"{inner}WaitFlag<HardEvent::V_S>(EVENT_ID0);")
            if st.kind == "sum":
                body.append(f"{inner}{st.tmp} += reduced_.GetValue(0);")
            else:
                body.append(f"{inner}{st.tmp} = {st.tmp} > reduced_.GetValue(0) ? {st.tmp} : reduced_.GetValue(0);")
            body.append(f"{inner}SetFlag<HardEvent::S_V>(EVENT_ID0);")
            body.append(f"{inner}WaitFlag<HardEvent::S_V>(EVENT_ID0);")
        tile_loop(expr_of, finish, used_by(st.expr))

    if plan.per_row_out:
        # one value per row: computed on one block, stored as one float
        body.append(f"{ind}{{")
        ind = ind + "    "
        blk = Block(str(BLOCK), str(LANES), row_scalars(), body, ind)
        for k, (y, e) in enumerate(zip(plan.outputs, plan.outs)):
            v = blk(e)
            body.append(f"{ind}LocalTensor<float> {y}T = {y}Queue_.AllocTensor<float>();")
            if isinstance(v, Scalar):
                body.append(f"{ind}Duplicate({y}T, {v.code}, {BLOCK});")
            else:
                body.append(f"{ind}Muls({y}T, {v.name}, 1.0f, {BLOCK});")
            body += [f"{ind}{y}Queue_.EnQue({y}T);", f"{ind}Store{y}(row, 0, 1);"]
        body.append(f"{ind[:-4]}}}")
        temps, masks = max(temps, blk.temps), max(masks, blk.masks)
    else:
        values: dict = {}

        def outs_of(blk):
            for k, e in enumerate(plan.outs):
                values[k] = blk(e)

        def store(blk, inner):
            # every output computed before any is stored: an output may share an input's buffer
            for k, y in enumerate(plan.outputs):
                v = values[k]
                body.append(f"{inner}LocalTensor<float> {y}T = {y}Queue_.AllocTensor<float>();")
                if isinstance(v, Scalar):
                    body.append(f"{inner}Duplicate({y}T, {v.code}, len);")
                else:   # an exact copy (x * 1 keeps -0 and NaN)
                    body.append(f"{inner}Muls({y}T, {v.name}, 1.0f, len);")
                body.extend([f"{inner}{y}Queue_.EnQue({y}T);", f"{inner}Store{y}(row, col, len);"])
        tile_loop(outs_of, store, used_by(*plan.outs))

    text = _render(plan, name, chip, tensors, scalars_in, fields, body, temps, masks)
    return _Source(text, temps, masks, tuple(fields))


_UNALIGNED = """\
    // No DataCopyPad on this chip. A view that is not whole 32-byte blocks runs on one core (blockAligned 0)
    // and moves through stage_: the covering blocks with one aligned DataCopy, elements shifted into place by
    // the scalar unit; out, the edge blocks are read, patched and written back (no other core shares them).
    __aicore__ inline void LoadUnaligned(const LocalTensor<float> &t, const GlobalTensor<float> &gm, uint32_t at,
                                         uint32_t len)
    {
        const uint32_t lead = at % 8;
        SetFlag<HardEvent::MTE3_MTE2>(EVENT_ID2);  // stage_'s last write-out has left
        WaitFlag<HardEvent::MTE3_MTE2>(EVENT_ID2);
        SetFlag<HardEvent::S_MTE2>(EVENT_ID2);     // and the scalar unit is done reading it
        WaitFlag<HardEvent::S_MTE2>(EVENT_ID2);
        DataCopy(stage_, gm[at - lead], (lead + len + 7) / 8 * 8);
        SetFlag<HardEvent::MTE2_S>(EVENT_ID2);
        WaitFlag<HardEvent::MTE2_S>(EVENT_ID2);
        SetFlag<HardEvent::V_S>(EVENT_ID2);        // t's previous readers (vector) are done
        WaitFlag<HardEvent::V_S>(EVENT_ID2);
        for (uint32_t i = 0; i < len; ++i) {
            t.SetValue(i, stage_.GetValue(lead + i));
        }
        SetFlag<HardEvent::S_V>(EVENT_ID2);
        WaitFlag<HardEvent::S_V>(EVENT_ID2);
    }

    __aicore__ inline void StoreUnaligned(const GlobalTensor<float> &gm, uint32_t at, const LocalTensor<float> &t,
                                          uint32_t len)
    {
        const uint32_t lead = at % 8;
        const uint32_t span = (lead + len + 7) / 8 * 8;
        SetFlag<HardEvent::MTE3_MTE2>(EVENT_ID2);  // earlier writes of these blocks have landed
        WaitFlag<HardEvent::MTE3_MTE2>(EVENT_ID2);
        SetFlag<HardEvent::S_MTE2>(EVENT_ID2);
        WaitFlag<HardEvent::S_MTE2>(EVENT_ID2);
        DataCopy(stage_, gm[at - lead], span);
        SetFlag<HardEvent::MTE2_S>(EVENT_ID2);
        WaitFlag<HardEvent::MTE2_S>(EVENT_ID2);
        SetFlag<HardEvent::V_S>(EVENT_ID2);        // t was computed by the vector unit
        WaitFlag<HardEvent::V_S>(EVENT_ID2);
        for (uint32_t i = 0; i < len; ++i) {
            stage_.SetValue(lead + i, t.GetValue(i));
        }
        SetFlag<HardEvent::S_MTE3>(EVENT_ID2);
        WaitFlag<HardEvent::S_MTE3>(EVENT_ID2);
        DataCopy(gm[at - lead], stage_, span);
    }
"""


def _render(plan, name, chip, tensors, scalars_in, fields, body, temps, masks) -> str:
    cls = "Kernel" + "".join(p.capitalize() for p in name.removeprefix(PREFIX).split("_"))
    out = []
    doc = [w for line in plan.doc for w in textwrap.wrap(line, 100, subsequent_indent="  ")]
    out.append(f"// {name}: generated by llmc (codegen/ascendc/pointwise.py) for {chip.title} "
               f"(__NPU_ARCH__ {chip.npu_arch}). Do not edit.")
    out += [f"//   {line}" for line in doc]
    out += ["//", "// Rows: core b owns rows [b * rowsPerCore, min((b + 1) * rowsPerCore, rows)); each row is",
            "// read in tiles of tileLength floats (host-computed tiling, copied from GM below).",
            '#include "kernel_operator.h"', "", "using namespace AscendC;", "",
            f"struct {cls}Tiling {{", "    uint32_t rows;", "    uint32_t n;", "    uint32_t tileLength;",
            "    uint32_t rowsPerCore;"]
    out += [f"    {c} {f};" for c, f in fields]
    out += ["};", "", f"class {cls} {{", "public:", f"    __aicore__ inline {cls}() {{}}", ""]
    gm_args = [*plan.outputs, *(o.name for o in plan.operands)]
    out.append(f"    __aicore__ inline void Init({', '.join(f'GM_ADDR {a}' for a in gm_args)}, GM_ADDR tiling)")
    out += ["    {", "        __gm__ uint32_t *src = reinterpret_cast<__gm__ uint32_t *>(tiling);",
            "        uint32_t *dst = reinterpret_cast<uint32_t *>(&tiling_);",
            f"        for (uint32_t i = 0; i < sizeof({cls}Tiling) / sizeof(uint32_t); ++i) {{",
            "            dst[i] = src[i];", "        }",
            "        const uint32_t first = static_cast<uint32_t>(GetBlockIdx()) * tiling_.rowsPerCore;",
            "        const uint32_t end = first + tiling_.rowsPerCore;",
            "        firstRow_ = first;", "        endRow_ = end < tiling_.rows ? end : tiling_.rows;"]
    sizes = {"elem": "tiling_.rows * tiling_.n", "col": "tiling_.n", "row": "tiling_.rows", "scalar": "1",
             "slice": None}
    pad = chip.has_data_copy_pad

    def gm_size(size: str) -> str:
        # without DataCopyPad the edge blocks are read whole: the host's buffers are 64-byte rounded
        return size if pad else f"({size} + 7) / 8 * 8"
    for y in plan.outputs:
        size = "tiling_.rows" if plan.per_row_out else "tiling_.rows * tiling_.n"
        out.append(f"        {y}Gm_.SetGlobalBuffer(reinterpret_cast<__gm__ float *>({y}), {gm_size(size)});")
    for o in plan.operands:
        size = sizes[o.layout] or f"tiling_.rows * tiling_.{o.name}_stride"
        out.append(f"        {o.name}Gm_.SetGlobalBuffer(reinterpret_cast<__gm__ float *>({o.name}), {gm_size(size)});")
    for q in [*(o.name for o in tensors), *plan.outputs]:
        out.append(f"        pipe_.InitBuffer({q}Queue_, 1, tiling_.tileLength * sizeof(float));")
    out.append(f"        pipe_.InitBuffer(scratchBuf_, {max(temps, 1)} * tiling_.tileLength * sizeof(float));")
    if not pad:
        out.append("        pipe_.InitBuffer(stageBuf_, (tiling_.tileLength + 8) * sizeof(float));  // unaligned views")
    if masks:
        out += ["        maskBytes_ = (tiling_.tileLength / 8 + 31) / 32 * 32;  // one bit per float, whole blocks",
                f"        pipe_.InitBuffer(maskBuf_, {masks} * maskBytes_);"]
    out += ["        // ReduceSum/ReduceMax: one partial per 64-float repeat, rounded up to a block; the result",
            "        pipe_.InitBuffer(reduceBuf_, ((tiling_.tileLength / 64 + 7) / 8 * 8 + 8) * sizeof(float));",
            "    }", "", "    __aicore__ inline void Process()", "    {",
            "        scratch_ = scratchBuf_.Get<float>();"]
    if not pad:
        out.append("        stage_ = stageBuf_.Get<float>();")
    if masks:
        out.append("        mask_ = maskBuf_.Get<uint8_t>();")
    out += ["        reduced_ = reduceBuf_.Get<float>();",
            "        reduceWork_ = reduced_[8];",
            "        for (uint32_t row = firstRow_; row < endRow_; ++row) {", *body, "        }", "    }", "",
            "private:"]
    for o in tensors:
        src = f"{o.name}Gm_[{_gm_offset(o, 'col')}]"
        out += [f"    __aicore__ inline void Load{o.name}(uint32_t row, uint32_t col, int32_t len)", "    {",
                f"        LocalTensor<float> t = {o.name}Queue_.AllocTensor<float>();"]
        if chip.has_data_copy_pad:
            copy = [f"DataCopyExtParams params{{1, static_cast<uint32_t>(len * sizeof(float)), 0, 0, 0}};",
                    "DataCopyPadExtParams<float> pad{false, 0, 0, 0};", f"DataCopyPad(t, {src}, params, pad);"]
        else:   # no DataCopyPad: whole blocks straight, other views through the staging block
            at = _gm_offset(o, "col")
            copy = ["if (tiling_.blockAligned) {", f"    DataCopy(t, {src}, static_cast<uint32_t>(len));",
                    "} else {", f"    LoadUnaligned(t, {o.name}Gm_, {at}, static_cast<uint32_t>(len));", "}"]
        if o.absent is not None:
            out += [f"        if (tiling_.{o.name}_present) {{", *("            " + c for c in copy),
                    "        } else {", f"            Duplicate(t, {literal(o.absent)}, len);", "        }"]
        else:
            out += ["        " + c for c in copy]
        out += [f"        {o.name}Queue_.EnQue(t);", "    }", ""]
    for y in plan.outputs:
        dst = f"{y}Gm_[row]" if plan.per_row_out else f"{y}Gm_[row * tiling_.n + col]"
        at = "row" if plan.per_row_out else "row * tiling_.n + col"
        copy = (["        DataCopyExtParams params{1, static_cast<uint32_t>(len * sizeof(float)), 0, 0, 0};",
                 f"        DataCopyPad({dst}, t, params);"] if pad
                else ["        if (tiling_.blockAligned) {", f"            DataCopy({dst}, t, static_cast<uint32_t>(len));",
                      "        } else {", f"            StoreUnaligned({y}Gm_, {at}, t, static_cast<uint32_t>(len));",
                      "        }"])
        out += [f"    __aicore__ inline void Store{y}(uint32_t row, uint32_t col, int32_t len)", "    {",
                f"        LocalTensor<float> t = {y}Queue_.DeQue<float>();",
                *copy, f"        {y}Queue_.FreeTensor(t);",
                "        (void)col;" if plan.per_row_out else "", "    }", ""]
    if not pad:
        out += _UNALIGNED.splitlines()
    out += ["    TPipe pipe_;"]
    out += [f"    TQue<TPosition::VECIN, 1> {o.name}Queue_;" for o in tensors]
    out += [f"    TQue<TPosition::VECOUT, 1> {y}Queue_;" for y in plan.outputs]
    out += ["    TBuf<TPosition::VECCALC> scratchBuf_;", "    TBuf<TPosition::VECCALC> reduceBuf_;"]
    if masks:
        out += ["    TBuf<TPosition::VECCALC> maskBuf_;", "    LocalTensor<uint8_t> mask_;", "    uint32_t maskBytes_ = 0;"]
    out += ["    LocalTensor<float> scratch_;", "    LocalTensor<float> reduced_;", "    LocalTensor<float> reduceWork_;"]
    if not pad:
        out += ["    TBuf<TPosition::VECCALC> stageBuf_;", "    LocalTensor<float> stage_;"]
    out += [f"    GlobalTensor<float> {a}Gm_;" for a in gm_args]
    out += [f"    {cls}Tiling tiling_;", "    uint32_t firstRow_ = 0;", "    uint32_t endRow_ = 0;", "};", "",
            f'extern "C" __global__ __aicore__ void {name}({", ".join(f"GM_ADDR {a}" for a in gm_args)}, '
            "GM_ADDR tiling)", "{", f"    {cls} op;", f"    op.Init({', '.join(gm_args)}, tiling);",
            "    op.Process();", "}", ""]
    return "\n".join(line for line in out if line is not None)


def tile_length(chip: AscendChip, n: int, source: _Source, plan: KernelPlan, max_tile: int = MAX_TILE) -> int:
    """Floats per tile: as long as the row (rounded to whole repeats) and the UB allow, at most MAX_TILE.
    UB per tile float: 4 B for each input and output queue and scratch tile, 1/8 B per mask."""
    queues = sum(_is_tensor(o.layout) for o in plan.operands) + len(plan.outputs)
    stage = 0 if chip.has_data_copy_pad else 1     # the staging tile of unaligned views (no DataCopyPad)
    per_float = 4 * (queues + max(source.temps, 1) + stage) + source.masks / 8 + 4 / LANES
    fixed = 2 * 32 + 8 * 4 + 32 * source.masks + 32 * stage   # reduce result block, rounding of each mask
    fit = int((chip.ub_bytes - fixed) // per_float) // LANES * LANES
    if fit < LANES:
        raise AscendCodegenError(f"{plan.name}: {queues} queues and {source.temps} scratch tiles leave no "
                                 f"{LANES}-float tile in {chip.title}'s {chip.ub_bytes} B of UB")
    return max(LANES, min(fit, max_tile, _round_up(n, LANES)))


def block_aligned(plan: KernelPlan, n: int, slices: dict[str, tuple[int, int]]) -> bool:
    """Every row, slice stride and offset of the view is whole 32-byte blocks (chips without DataCopyPad
    move such views with plain DataCopy on every core)."""
    ends = [n] + [v for o in plan.slices for v in slices[o.name]]
    return not plan.per_row_out and all(v % BLOCK == 0 for v in ends)


def kernel(plan: KernelPlan, chip: AscendChip, rows: int, n: int, scalars: dict[str, float] | None = None,
           slices: dict[str, tuple[int, int]] | None = None, present: dict[str, bool] | None = None,
           max_tile: int = MAX_TILE) -> AscendKernel:
    """The AscendC kernel of `plan` for one chip over a (rows, n) view. scalars: the plan's float
    parameters; slices: slice operand -> (row stride, offset); present: nullable operand -> given;
    max_tile: a lower tile cap (a multiple of 64) makes short rows span several tiles (tests)."""
    why = supports(plan)
    if why:
        raise Unsupported(f"{plan.name}: {why}")
    if rows < 1 or n < 1:
        raise AscendCodegenError(f"{plan.name}: empty view ({rows} x {n})")
    scalars, slices, present = scalars or {}, slices or {}, present or {}
    name = PREFIX + plan.name
    src = _source(plan, name, chip)
    tile = tile_length(chip, n, src, plan, max_tile)
    aligned = block_aligned(plan, n, slices)
    rows_per_core = _ceil_div(rows, chip.n_cores if chip.has_data_copy_pad or aligned else 1)
    block_dim = _ceil_div(rows, rows_per_core)
    values = {"rows": rows, "n": n, "tileLength": tile, "rowsPerCore": rows_per_core}
    for o in plan.slices:
        values[f"{o.name}_stride"], values[f"{o.name}_offset"] = slices[o.name]
    for o in plan.operands:
        if o.absent is not None:
            values[f"{o.name}_present"] = int(present.get(o.name, True))
    values.update(scalars)
    values["blockAligned"] = int(aligned)
    fields = [TilingField(f, "uint32_t", values[f]) for f in ("rows", "n", "tileLength", "rowsPerCore")]
    fields += [TilingField(f, c, values[f]) for c, f in src.fields]
    shape = {"elem": (rows, n), "col": (n,), "row": (rows,), "scalar": (1,)}

    def device(s: tuple[int, ...]) -> tuple[int, ...]:
        # without DataCopyPad edge blocks move whole: room for a whole last block (the model's host rounds
        # every device buffer to 64 bytes)
        if chip.has_data_copy_pad or (s[0] * (s[1] if len(s) > 1 else 1)) % BLOCK == 0:
            return s
        return (_round_up(s[0], BLOCK),) if len(s) == 1 else (s[0] + _ceil_div(BLOCK, s[1]), s[1])
    out_shape = (rows,) if plan.per_row_out else (rows, n)
    args = [KernelArg(y, "float32", out_shape, device(out_shape), output=True) for y in plan.outputs]
    for o in plan.operands:
        s = shape.get(o.layout) or (rows, slices[o.name][0])
        args.append(KernelArg(o.name, "float32", s, device(s)))
    # the launcher fills outputs first in argument order; inputs follow (runtime/ascendc/launch.py)
    host_spec = dict(name=name, chip_title=chip.title, npu_arch=chip.npu_arch,
                     launch_symbol="llmc_launch_" + name.removeprefix("llmc_"), args=tuple(args))
    host = _ENV.get_template("launch_host.cpp.j2").render(k=SimpleNamespace(**host_spec))
    return AscendKernel(name, plan.name, chip, src.text, host, tuple(args), tuple(fields), block_dim,
                        recipe={"family": "pointwise", "temps": src.temps, "masks": src.masks,
                                "per_row_out": plan.per_row_out})
