"""AscendC kernels for Ascend 310B / 310P / 910B: tiling in Python, source from jinja2 templates.

The pointwise ops of models are generated from their definitions (codegen/ascendc/pointwise.py); the
hand-written kernels here are ``rope`` (more than a vector expression) and the single kernels ``add`` and
``rms_norm`` (f16 and 310P's host-padded path); the matmul and attention kernels have modules of their
own (matmul.py, attention.py) built on this one. Each public function
takes an :class:`AscendChip` and the problem shape and returns an :class:`AscendKernel`:
the kernel source, its host launch wrapper, the argument layout in GM and the tiling values.

The sources never depend on the shape, only on (op, dtype, chip): shapes travel in the tiling struct
the kernel copies from GM, so one compiled kernel serves every shape. Python decides everything
else -- names, tile sizes, buffer sizes, which copy path a chip takes -- and the templates only loop
and branch. Rules the tiling keeps (docs/ascendc.md §1, §7): every UB buffer is a multiple of 32 bytes
and the sum fits the chip's UB; every DataCopy moves whole 32-byte blocks; ragged data goes through
DataCopyPad where the chip has it (310B, 910B) and is padded on the host where it does not (310P).
"""

from __future__ import annotations

import struct
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import jinja2

# ---- chips ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AscendChip:
    """What tiling needs to know about one Ascend chip (the lead feeds this from device profiles)."""

    name: str  # short id: "310b", "310p", "910b"
    npu_arch: int  # __NPU_ARCH__: 3002, 2002, 2201
    ub_bytes: int  # usable Unified Buffer per core
    n_cores: int  # vector cores one launch spreads over
    has_data_copy_pad: bool  # DataCopyPad exists (not on 310P)
    has_shift: bool  # ShiftRight/ShiftLeft exist on the AI Core (not on 310P)

    @property
    def title(self) -> str:
        return f"Ascend{self.name.upper()}"


ASCEND_310B = AscendChip("310b", 3002, 184 * 1024, 1, True, True)  # vector-local UB (docs/ascendc.md §4)
ASCEND_310P = AscendChip("310p", 2002, 248 * 1024, 8, False, False)
ASCEND_910B = AscendChip("910b", 2201, 184 * 1024, 40, True, True)
CHIPS = {chip.name: chip for chip in (ASCEND_310B, ASCEND_310P, ASCEND_910B)}


class AscendCodegenError(ValueError):
    """A shape or option the AscendC kernels cannot serve (the message says which limit)."""


# ---- what a generated kernel is ------------------------------------------------------------------

# Kernel symbols: llmc_ascendc_<op>_<dtype>, apart from the C target's llmc_<op>_f32 in the same model library.
PREFIX = "llmc_ascendc_"
BLOCK_BYTES = 32  # UB data block: DataCopy lengths and UB addresses are multiples of this
BUFFER_NUM = 2  # double buffering, mirrors the kernels' constexpr
MAX_TILE_BYTES = 32 * 1024  # per queue buffer; bigger tiles only lengthen the pipeline fill

_DTYPES = {
    # numpy name: (C type, bytes, kernel suffix)
    "float32": ("float", 4, "f32"),
    "float16": ("half", 2, "f16"),
}
_CTYPE_BYTES = {"float": 4, "half": 2, "uint8_t": 1, "uint32_t": 4}


@dataclass(frozen=True)
class KernelArg:
    """One GM argument: the logical shape callers see and the shape laid out in GM."""

    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int, ...]
    device_shape: tuple[int, ...]  # equal to shape, or padded (310P tails, matmul rows)
    output: bool = False


@dataclass(frozen=True)
class TilingField:
    name: str
    ctype: str  # "uint32_t" or "float"
    value: int | float


@dataclass(frozen=True)
class AscendKernel:
    """A kernel for one chip and one shape: sources plus what the launcher needs to run it."""

    name: str  # extern "C" kernel symbol, e.g. llmc_add_f32
    op: str
    chip: AscendChip
    source: str  # <name>.cpp, includes "kernel_operator.h"
    host_source: str  # host wrapper, includes "<name>.cpp"
    args: tuple[KernelArg, ...]
    tiling: tuple[TilingField, ...]
    block_dim: int
    weight_layout: str = ""  # matmul only: "int8" or "nibbles" (see runtime/ascendc/host_prep.py)
    # What the generated host code needs to recompute the tiling at run time from the actual dims
    # (codegen/ascendc/templates/ascend_host.cpp.j2): the tiling family and its compile-time constants.
    recipe: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def npu_arch(self) -> int:
        return self.chip.npu_arch

    @property
    def launch_symbol(self) -> str:
        return "llmc_launch_" + self.name.removeprefix("llmc_")

    def tiling_value(self, name: str) -> int | float:
        return next(f.value for f in self.tiling if f.name == name)

    def tiling_bytes(self) -> bytes:
        fmt = "<" + "".join("f" if f.ctype == "float" else "I" for f in self.tiling)
        return struct.pack(fmt, *(f.value for f in self.tiling))


@dataclass(frozen=True)
class _Scratch:
    """A TBuf of tiling[count] elements of ctype (count None: `elems` elements)."""

    name: str
    ctype: str
    count: str | None
    elems: int = 0

    def expr(self) -> str:
        if self.count is None:
            return f"{self.elems} * sizeof({self.ctype})"
        return f"tiling.{self.count} * sizeof({self.ctype})"

    def nbytes(self, values: dict) -> int:
        n = self.elems if self.count is None else values[self.count]
        return n * _CTYPE_BYTES[self.ctype]

    def host_expr(self) -> str:
        """The same size as a C++ expression over the host tiling code's locals (colsAligned, ...)."""
        if self.count is None:
            return str(self.elems * _CTYPE_BYTES[self.ctype])
        return f"uint64_t({self.count}) * {_CTYPE_BYTES[self.ctype]}"


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    return _ceil_div(a, b) * b


def _io(dtype: str) -> tuple[str, int, str]:
    if dtype not in _DTYPES:
        raise AscendCodegenError(f"dtype {dtype!r} not supported; expected one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def _split(units: int, n_cores: int, multiple: int = 1) -> tuple[int, int]:
    """Contiguous split of `units` over at most n_cores: (units per core, block_dim), no idle core."""
    per_core = _round_up(_ceil_div(units, n_cores), multiple)
    return per_core, _ceil_div(units, per_core)


def _check_budget(chip: AscendChip, used: int, what: str) -> None:
    if used > chip.ub_bytes:
        raise AscendCodegenError(
            f"{what} needs {used} bytes of UB, {chip.title} has {chip.ub_bytes}; "
            "a chunked variant of this kernel is not implemented"
        )


def _render(template: str, spec: SimpleNamespace, args: tuple[KernelArg, ...]) -> tuple[str, str]:
    source = _ENV.get_template(template).render(k=spec)
    host_spec = SimpleNamespace(
        name=spec.name,
        chip_title=spec.chip_title,
        npu_arch=spec.npu_arch,
        launch_symbol="llmc_launch_" + spec.name.removeprefix("llmc_"),
        args=args,
    )
    host = _ENV.get_template("launch_host.cpp.j2").render(k=host_spec)
    return source, host


def _spec(
    name: str,
    chip: AscendChip,
    summary: str,
    doc_lines: list[str],
    fields: list[TilingField],
    origin: str,
    **extra,
) -> SimpleNamespace:
    parts = name.removeprefix(PREFIX).split("_")
    wrapped = [w for line in doc_lines for w in textwrap.wrap(line, 100, subsequent_indent="  ")]
    return SimpleNamespace(
        name=name,
        class_name="Kernel" + "".join(p.capitalize() for p in parts),
        summary=summary,
        origin=origin,
        chip_title=chip.title,
        npu_arch=chip.npu_arch,
        doc_lines=wrapped,
        tiling_type="".join(p.capitalize() for p in parts) + "Tiling",
        tiling_fields=fields,
        has_data_copy_pad=chip.has_data_copy_pad,
        **extra,
    )


# ---- elementwise: add ----------------------------------------------------------------------------

_ELEMENTWISE = {
    # op: (inputs, output, summary, fp32 scratch buffers for fp32 io, for fp16 io). The pointwise ops of
    # models are generated from their definitions (codegen/ascendc/pointwise.py); add stays as the
    # single kernel that shows the elementwise tiling and 310P's host padding (tests/ascendc).
    "add": (("x", "y"), "z", "z = x + y", (), ()),
}


def _elementwise(
    op: str,
    chip: AscendChip,
    n: int,
    dtype: str,
    origin: str,
    extra_fields: tuple[TilingField, ...] = (),
    **extra,
) -> AscendKernel:
    ctype, size, suffix = _io(dtype)
    if n < 1:
        raise AscendCodegenError(f"{op}: empty input")
    inputs, output, summary, scratch32, scratch16 = _ELEMENTWISE[op]
    scratch = scratch16 if ctype == "half" else scratch32
    align = BLOCK_BYTES // size
    # 310P has no DataCopyPad: the host pads N to whole 32-byte blocks (zeros, trimmed afterwards).
    total = n if chip.has_data_copy_pad else _round_up(n, align)
    bytes_per_elem = BUFFER_NUM * size * (len(inputs) + 1) + 4 * len(scratch)
    unit = 256 // size  # one vector repeat
    tile = min(chip.ub_bytes // bytes_per_elem, MAX_TILE_BYTES // size) // unit * unit
    tile = max(unit, min(tile, _round_up(_ceil_div(total, chip.n_cores), unit)))
    num_tiles = _ceil_div(total, tile)
    tiles_per_core, block_dim = _split(num_tiles, chip.n_cores)
    _check_budget(chip, tile * bytes_per_elem, f"{op} tile of {tile}")

    fields = [
        TilingField("totalLength", "uint32_t", total),
        TilingField("tileLength", "uint32_t", tile),
        TilingField("numTiles", "uint32_t", num_tiles),
        TilingField("tilesPerCore", "uint32_t", tiles_per_core),
        *extra_fields,
    ]
    name = f"{PREFIX}{op}_{suffix}"
    tail = (
        "ragged last tile: DataCopyPad"
        if chip.has_data_copy_pad
        else f"310P: host pads N to a multiple of {align} (no DataCopyPad)"
    )
    doc = [
        f"{summary}",
        f"Shapes: {', '.join(inputs)} -> {output}, all (N,) {ctype}.",
        f"Tiling: N in tiles of tileLength elements (a multiple of {unit}, <= {MAX_TILE_BYTES // 1024} KB per",
        "  buffer); core b takes tiles [b * tilesPerCore, (b + 1) * tilesPerCore).",
        f"UB per tile element: {len(inputs) + 1} queues x {BUFFER_NUM} buffers x {size} B"
        + (f" + {len(scratch)} fp32 scratch" if scratch else "")
        + f" = {bytes_per_elem} B;"
        f" {chip.title} UB {chip.ub_bytes // 1024} KB.",
        f"Tail: {tail}.",
    ]
    spec = _spec(
        name,
        chip,
        summary.split(",")[0],
        doc,
        fields,
        origin,
        inputs=inputs,
        output=output,
        io_type=ctype,
        io_is_half=ctype == "half",
        scratch=scratch,
        **extra,
    )
    args = tuple(KernelArg(a, dtype, (n,), (total,)) for a in inputs) + (
        KernelArg(output, dtype, (n,), (total,), output=True),
    )
    source, host = _render(f"{op}.cpp.j2", spec, args)
    recipe = {"family": "elementwise", "bytes_per_elem": bytes_per_elem, "elem_bytes": size}
    return AscendKernel(name, op, chip, source, host, args, tuple(fields), block_dim, recipe=recipe)


def add(chip: AscendChip, n: int, dtype: str = "float32", origin: str = "add") -> AscendKernel:
    """z[N] = x[N] + y[N]; half inputs add in half (one rounding), as the vector unit does."""
    return _elementwise("add", chip, n, dtype, origin)


# ---- row kernels: rms_norm -----------------------------------------------------------------------


def _rows_kernel(
    op: str,
    chip: AscendChip,
    rows: int,
    cols: int,
    dtype: str,
    scratch: list[_Scratch],
    extra_fields: list[TilingField],
    extra_inputs: tuple[str, ...],
    summary: str,
    origin: str,
) -> tuple[SimpleNamespace, tuple[KernelArg, ...], list[TilingField], int]:
    ctype, size, suffix = _io(dtype)
    if rows < 1 or cols < 1:
        raise AscendCodegenError(f"{op}: empty input ({rows} x {cols})")
    align = BLOCK_BYTES // size
    cols_aligned = _round_up(cols, align)
    # GM row stride: logical on chips with DataCopyPad, padded to whole blocks on 310P.
    row_stride = cols if chip.has_data_copy_pad else cols_aligned
    work_elems = _round_up(_ceil_div(cols, 64), 8)  # ReduceSum/ReduceMax: one fp32 partial per repeat
    values = {"colsAligned": cols_aligned, "workBytes": work_elems * 4}
    fixed = sum(s.nbytes(values) for s in scratch)
    row_bytes = BUFFER_NUM * 2 * cols_aligned * size  # in + out queues
    rows_per_core, block_dim = _split(rows, chip.n_cores)
    fit = (chip.ub_bytes - fixed) // row_bytes
    rows_per_iter = min(rows_per_core, fit, max(1, MAX_TILE_BYTES // (cols_aligned * size)), 4095)
    if rows_per_iter < 1:
        raise AscendCodegenError(
            f"{op}: one row of {cols} {ctype} does not fit in {chip.title} UB "
            f"({fixed + row_bytes} > {chip.ub_bytes} bytes); chunked rows are not implemented"
        )
    _check_budget(chip, fixed + rows_per_iter * row_bytes, f"{op} rows of {cols}")
    fields = [
        TilingField("rows", "uint32_t", rows),
        TilingField("cols", "uint32_t", cols),
        TilingField("colsAligned", "uint32_t", cols_aligned),
        TilingField("rowStride", "uint32_t", row_stride),
        TilingField("rowsPerCore", "uint32_t", rows_per_core),
        TilingField("rowsPerIter", "uint32_t", rows_per_iter),
        TilingField("workBytes", "uint32_t", work_elems * 4),
        *extra_fields,
    ]
    name = f"{PREFIX}{op}_{suffix}"
    copy = (
        "rows whose bytes are not a multiple of 32 move with DataCopyPad (one call per tile)"
        if chip.has_data_copy_pad
        else "310P: the host pads every row to colsAligned (no DataCopyPad)"
    )
    doc = [
        summary,
        f"Shapes: x, y (rows, cols) {ctype}"
        + (f"; {', '.join(extra_inputs)} (cols,) {ctype}" if extra_inputs else "")
        + "; math in fp32.",
        "Tiling: core b owns rows [b * rowsPerCore, (b + 1) * rowsPerCore), rowsPerIter rows per pipeline",
        "  step; in UB each row starts at a 32-byte boundary (colsAligned), vector ops use `cols`.",
        (
            f"UB: 2 queues x {BUFFER_NUM} buffers x rowsPerIter x colsAligned x {size} B + scratch "
            f"({', '.join(s.name for s in scratch)}); {chip.title} UB {chip.ub_bytes // 1024} KB."
        ),
        f"Tail: {copy}.",
    ]
    spec = _spec(
        name,
        chip,
        summary,
        doc,
        fields,
        origin,
        io_type=ctype,
        io_is_half=ctype == "half",
        extra_inputs=extra_inputs,
        scratch=[SimpleNamespace(name=s.name, bytes=s.expr()) for s in scratch],
        recipe={
            "family": "rows",
            "elem_bytes": size,
            "fixed_bytes": " + ".join(s.host_expr() for s in scratch) or "0",
        },
    )
    args = (
        KernelArg("x", dtype, (rows, cols), (rows, row_stride)),
        *(KernelArg(a, dtype, (cols,), (row_stride,)) for a in extra_inputs),
        KernelArg("y", dtype, (rows, cols), (rows, row_stride), output=True),
    )
    return spec, args, fields, block_dim


def rms_norm(
    chip: AscendChip,
    rows: int,
    cols: int,
    eps: float = 1e-6,
    dtype: str = "float32",
    origin: str = "rms_norm",
) -> AscendKernel:
    """y = x / sqrt(mean(x^2) + eps) * gamma per row, from Mul/ReduceSum/Muls/Adds/Rsqrt/Muls/Mul."""
    ctype = _io(dtype)[0]
    scratch = [
        _Scratch("sq", "float", "colsAligned"),
        _Scratch("work", "uint8_t", "workBytes"),
        _Scratch("scalar", "float", None, 8),
        _Scratch("gamma", ctype, "colsAligned"),
    ]
    if ctype == "half":
        scratch += [_Scratch("xf", "float", "colsAligned"), _Scratch("gammaF", "float", "colsAligned")]
    extra = [TilingField("eps", "float", float(eps)), TilingField("invCols", "float", 1.0 / cols)]
    spec, args, fields, block_dim = _rows_kernel(
        "rms_norm",
        chip,
        rows,
        cols,
        dtype,
        scratch,
        extra,
        ("gamma",),
        "y = x * rsqrt(sum(x * x) / cols + eps) * gamma, per row",
        origin,
    )
    source, host = _render("rms_norm.cpp.j2", spec, args)
    return AscendKernel(
        spec.name, "rms_norm", chip, source, host, args, tuple(fields), block_dim, recipe=spec.recipe
    )


# ---- rope ----------------------------------------------------------------------------------------

ROPE_MODES = {"norm": 0, "neox": 1}


def rope(
    chip: AscendChip,
    tokens: int,
    heads: int,
    head_dim: int,
    n_dims: int | None = None,
    mode: str = "norm",
    origin: str = "rope",
) -> AscendKernel:
    """Rotate x[tokens, heads, head_dim] (fp32) with host tables cos/sin[tokens, head_dim].

    The tables come from ``llmc.runtime.ascendc.host_prep.rope_tables``: per element, the cos of its
    pair's angle and the signed sin (-sin on the first element of a pair, +sin on the second), 1 and 0
    for dims >= n_dims, so the kernel is y = x * cos + partner(x) * sin for both modes.
    """
    n_dims = head_dim if n_dims is None else n_dims
    if mode not in ROPE_MODES:
        raise AscendCodegenError(f"rope mode {mode!r}; expected one of {sorted(ROPE_MODES)}")
    if head_dim % 8 != 0 or n_dims % 2 != 0 or not 0 < n_dims <= head_dim:
        raise AscendCodegenError(
            f"rope needs head_dim % 8 == 0 and even n_dims <= head_dim (got {head_dim}, {n_dims})"
        )
    width = heads * head_dim
    ub = BUFFER_NUM * (2 * width + 2 * head_dim) * 4 + 2 * width * 4
    _check_budget(chip, ub, f"rope row of {heads} x {head_dim}")
    tokens_per_core, block_dim = _split(tokens, chip.n_cores)
    fields = [
        TilingField("tokens", "uint32_t", tokens),
        TilingField("heads", "uint32_t", heads),
        TilingField("headDim", "uint32_t", head_dim),
        TilingField("rowWidth", "uint32_t", width),
        TilingField("nDims", "uint32_t", n_dims),
        TilingField("neox", "uint32_t", ROPE_MODES[mode]),
        TilingField("tokensPerCore", "uint32_t", tokens_per_core),
    ]
    name = f"{PREFIX}rope_f32"
    doc = [
        "y = x * cos + partner(x) * sin_signed; NORM partners (2i, 2i+1), NEOX (i, i + nDims/2).",
        "Shapes: x, y (tokens, heads * headDim) float; cos, sin (tokens, headDim) float from the host.",
        "Tiling: core b owns tokens [b * tokensPerCore, (b + 1) * tokensPerCore), one token per step;",
        "  partner offsets are computed once per core for Gather.",
        (
            f"UB: x/y queues {BUFFER_NUM} x rowWidth x 4 B each, table queue {BUFFER_NUM} x 2 x headDim x 4 B, "
            "swap + offsets rowWidth x 4 B each."
        ),
    ]
    spec = _spec(name, chip, "rotary position embedding (NORM or NEOX pairs)", doc, fields, origin)
    args = (
        KernelArg("x", "float32", (tokens, width), (tokens, width)),
        KernelArg("cos", "float32", (tokens, head_dim), (tokens, head_dim)),
        KernelArg("sin", "float32", (tokens, head_dim), (tokens, head_dim)),
        KernelArg("y", "float32", (tokens, width), (tokens, width), output=True),
    )
    source, host = _render("rope.cpp.j2", spec, args)
    return AscendKernel(name, "rope", chip, source, host, args, tuple(fields), block_dim, recipe={"family": "rope"})


KERNELS = {
    "add": add,
    "rms_norm": rms_norm,
    "rope": rope,
}
