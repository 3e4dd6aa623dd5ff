"""The quantized matmul kernel (templates/matmul.cpp.j2): tiling in Python, mirrored by PlanMatmul in
templates/llmc_ascend.cpp.j2 (docs/ascendc.md §10)."""
from __future__ import annotations

from .kernels import (BLOCK_BYTES, BUFFER_NUM, MAX_TILE_BYTES, PREFIX, AscendChip, AscendCodegenError,
                      AscendKernel, KernelArg, TilingField, _render, _round_up, _spec, _split)

MAX_MATMUL_ROWS_PER_ITER = 64  # rows per matmul tile: one WholeReduceSum repeat per row

MAX_CHUNK_GROUPS = 64  # K chunk: one WholeReduceSum repeat of fp32 covers at most 64 group sums per row
MAX_TOKEN_BLOCK = 64  # tokens whose x is resident at once (prefill); bounded further by UB


def matmul(
    chip: AscendChip,
    quant: str,
    rows: int,
    k: int,
    tokens: int = 1,
    bias: bool = False,
    origin: str = "matmul",
) -> AscendKernel:
    """y[tokens, rows] = x[tokens, k] . W[rows, k]^T (+ bias[rows]) for Q4_0 / Q8_0 weights repacked on the
    host (docs/ascendc.md §6); tokens = 1 is decode, more is one prefill launch.

    Planes (``llmc.runtime.ascendc.host_prep.repack``): quants (rowsPadded, qsStride) -- int8 values
    (Q8_0, and Q4_0 on 310P which lacks ShiftRight) or ggml-ordered nibbles (Q4_0 elsewhere) -- and
    fp16 scales (rowsPadded, groupsAligned). Rows are padded to a multiple of 8 so every output
    DataCopy moves whole blocks; y is (tokens, rowsPadded) and the launcher trims it.

    Tiling (docs/ascendc.md §10): K in chunks of chunkGroups <= 64 groups, so no width is too wide; a
    tile of rowsPerIter rows x one chunk is copied in once and used for every token of the resident
    block (tokenBlock tokens of x, kept in UB as fp16); the weights stream once per token block.
    """
    if quant not in ("q4_0", "q8_0"):
        raise AscendCodegenError(f"matmul quant {quant!r}; expected q4_0 or q8_0")
    if k % 32 != 0 or k < 32 or rows < 1 or tokens < 1:
        raise AscendCodegenError(
            f"matmul needs k a positive multiple of 32, rows >= 1 and tokens >= 1 (got {tokens} x {rows} x {k})"
        )
    plan = plan_matmul(chip, quant, rows, k, tokens)
    layout = plan["layout"]
    fields = [
        TilingField(name, "uint32_t", plan[name])
        for name in (
            "rows", "k", "tokens", "groups", "groupsAligned", "qsStride", "rowsPerCore", "rowsPerIter",
            "chunkGroups", "chunkBytes", "chunkScales", "tokenBlock",
        )
    ] + [TilingField("hasBias", "uint32_t", int(bias))]
    quant_type = "uint8_t" if layout == "nibbles" else "int8_t"
    name = f"{PREFIX}matmul_{quant}" + ("_i8" if quant == "q4_0" and layout == "int8" else "")
    unpack = (
        "nibbles unpacked with And/ShiftRight on uint16 words, x permuted per chunk to match"
        if layout == "nibbles"
        else "int8 quants (Q4_0 repacked to int8 on the host: 310P has no ShiftRight)"
    )
    doc = [
        f"y[tokens, rows] = x[tokens, k] . W[rows, k]^T (+ bias), W in {quant.upper()} as SoA planes; {unpack}.",
        f"Shapes: qs (rows, qsStride) {quant_type}, scales (rows, groupsAligned) half, x (tokens, k) float,",
        "  bias (rows,) float (hasBias), y (tokens, rows) float; rows padded to a multiple of 8 on the host.",
        "Tiling: core b owns rows [b * rowsPerCore, ...), rowsPerIter rows (multiple of 8) per tile; K in",
        "  chunks of chunkGroups <= 64 groups; x of tokenBlock tokens resident in UB as fp16.",
        "Per tile and chunk: one strided copy of quants and scales, dequantized once to fp16; per token and",
        "  row: Cast to fp32, Mul by x, WholeReduceSum per group, Mul by the scales; per token one",
        "  WholeReduceSum over the rows' group sums straight into the output tile (added across chunks).",
        f"{chip.title} UB {chip.ub_bytes // 1024} KB.",
    ]
    spec = _spec(
        name,
        chip,
        f"{quant.upper()} matrix product (decode and prefill)",
        doc,
        fields,
        origin,
        quant_type=quant_type,
        nibbles=layout == "nibbles",
        group_bytes=16 if layout == "nibbles" else 32,
    )
    rows_padded, qs_stride, groups_aligned = plan["rows"], plan["qsStride"], plan["groupsAligned"]
    args = (
        KernelArg(
            "qs",
            "uint8" if layout == "nibbles" else "int8",
            (rows_padded, qs_stride),
            (rows_padded, qs_stride),
        ),
        KernelArg("scales", "float16", (rows_padded, groups_aligned), (rows_padded, groups_aligned)),
        KernelArg("x", "float32", (tokens, k), (tokens, k)),
        KernelArg("bias", "float32", (rows,), (rows_padded,)),
        KernelArg("y", "float32", (tokens, rows), (tokens, rows_padded), output=True),
    )
    source, host = _render("matmul.cpp.j2", spec, args)
    return AscendKernel(
        name, "matmul", chip, source, host, args, tuple(fields), plan["blockDim"], weight_layout=layout,
        recipe={"family": "matmul"},
    )


def matmul_ub_bytes(layout: str, k: int, rows_per_iter: int, chunk_groups: int, token_block: int) -> int:
    """UB bytes of the matmul kernel's buffers (matmul.cpp.j2 Init, buffer for buffer)."""
    chunk = chunk_groups * 32
    chunk_bytes = _round_up(chunk_groups * (16 if layout == "nibbles" else 32), BLOCK_BYTES)
    chunk_scales = _round_up(chunk_groups, 16)
    r = rows_per_iter
    queues = BUFFER_NUM * (r * chunk_bytes + r * chunk_scales * 2 + token_block * r * 4)
    scratch = token_block * k * 2 + 2 * chunk * 4 + r * chunk * 2 + r * chunk_scales * 4 + r * 64 * 4 + 2 * r * 4
    nibbles = 3 * chunk_bytes if layout == "nibbles" else 0
    return queues + scratch + nibbles


def plan_matmul(chip: AscendChip, quant: str, rows: int, k: int, tokens: int) -> dict:
    """The matmul tiling (mirrored in C++ by PlanMatmul in llmc_ascend.cpp.j2): rows split over the
    cores in multiples of 8; a K chunk of up to 64 groups; as many rows per tile as MAX_TILE_BYTES of
    dequantized fp16 weights allow (8..64); then as many resident tokens as the rest of UB holds."""
    layout = "nibbles" if quant == "q4_0" and chip.has_shift else "int8"
    groups = k // 32
    chunk_groups = min(groups, MAX_CHUNK_GROUPS)
    chunk_bytes = _round_up(chunk_groups * (16 if layout == "nibbles" else 32), BLOCK_BYTES)
    rows_padded = _round_up(rows, 8)
    rows_per_core, block_dim = _split(rows_padded, chip.n_cores, multiple=8)
    # the fp16 dequantized tile (rows x chunk) is the largest per-row buffer: at most MAX_TILE_BYTES
    rows_per_iter = min(MAX_MATMUL_ROWS_PER_ITER, rows_per_core, max(8, MAX_TILE_BYTES // (chunk_groups * 64) // 8 * 8))
    fixed = matmul_ub_bytes(layout, k, rows_per_iter, chunk_groups, 0)
    per_token = matmul_ub_bytes(layout, k, rows_per_iter, chunk_groups, 1) - fixed
    token_block = min(tokens, MAX_TOKEN_BLOCK, max(0, chip.ub_bytes - fixed) // per_token)
    if token_block < 1:
        raise AscendCodegenError(
            f"matmul k={k}: one token's x (fp16) and a tile of {rows_per_iter} rows do not fit in "
            f"{chip.title} UB ({fixed + per_token} > {chip.ub_bytes} bytes)"
        )
    return {
        "layout": layout,
        "blockDim": block_dim,
        "rows": rows_padded,
        "k": k,
        "tokens": tokens,
        "groups": groups,
        "groupsAligned": _round_up(groups, 16),
        "qsStride": _round_up(k // 2, BLOCK_BYTES) if layout == "nibbles" else k,
        "rowsPerCore": rows_per_core,
        "rowsPerIter": rows_per_iter,
        "chunkGroups": chunk_groups,
        "chunkBytes": chunk_bytes,
        "chunkScales": _round_up(chunk_groups, 16),
        "tokenBlock": token_block,
    }


def embed(chip: AscendChip, quant: str, vocab: int, k: int, tokens: int = 1, origin: str = "embed") -> AscendKernel:
    """y[t] = row ids[t] of a (vocab, k) Q4_0 / Q8_0 table, dequantized to fp32, from the planes the matmul
    reads (one repack serves a tied table's embedding and lm head)."""
    if quant not in ("q4_0", "q8_0") or k % 32 or k < 32 or vocab < 1 or tokens < 1:
        raise AscendCodegenError(f"embed: {quant} table ({vocab}, {k}); expected q4_0/q8_0 and k a multiple of 32")
    layout = "nibbles" if quant == "q4_0" and chip.has_shift else "int8"
    groups = k // 32
    qs_stride = _round_up(k // 2, BLOCK_BYTES) if layout == "nibbles" else k
    ub = (BUFFER_NUM * (qs_stride + _round_up(groups, 16) * 2 + k * 4) + k * 2 + _round_up(groups, 16) * 4
          + (3 * qs_stride if layout == "nibbles" else 0))
    if ub > chip.ub_bytes:
        raise AscendCodegenError(f"embed: a row of {k} does not fit {chip.title} UB ({ub} bytes)")
    per_core, block_dim = _split(tokens, chip.n_cores)
    values = {"rows": _round_up(vocab, 8), "k": k, "tokens": tokens, "groups": groups,
              "groupsAligned": _round_up(groups, 16), "qsStride": qs_stride, "tokensPerCore": per_core}
    fields = [TilingField(f, "uint32_t", v) for f, v in values.items()]
    quant_type = "uint8_t" if layout == "nibbles" else "int8_t"
    name = f"{PREFIX}embed_{quant}" + ("_i8" if quant == "q4_0" and layout == "int8" else "")
    doc = [f"y[t] = dequantized row ids[t] of a {quant.upper()} table in the matmul's SoA planes.",
           f"Shapes: qs (rows, qsStride) {quant_type}, scales (rows, groupsAligned) half, ids (tokens,) int32,",
           "  y (tokens, k) float.",
           "Tiling: tokens split over the cores; a row's quants and scales per step, scaled group by group."]
    spec = _spec(name, chip, f"{quant.upper()} embedding rows", doc, fields, origin, quant_type=quant_type,
                 nibbles=layout == "nibbles")
    rows8, ga = values["rows"], values["groupsAligned"]
    args = (
        KernelArg("qs", "uint8" if layout == "nibbles" else "int8", (rows8, qs_stride), (rows8, qs_stride)),
        KernelArg("scales", "float16", (rows8, ga), (rows8, ga)),
        KernelArg("ids", "int32", (tokens,), (tokens,)),
        KernelArg("y", "float32", (tokens, k), (tokens, k), output=True),
    )
    source, host = _render("embed.cpp.j2", spec, args)
    return AscendKernel(name, "embed", chip, source, host, args, tuple(fields), block_dim, weight_layout=layout,
                        recipe={"family": "embed"})
