"""Read a GGUF file: metadata, tensor table and dequantized weights.

A thin layer over the `gguf` package's reader. It adds what llmc needs on top: errors that name the
file, tensor and byte offset; ggml type names; and numpy-order shapes (GGUF `ne` is reversed).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from llmc.ir.errors import LlmcError


class GGUFError(LlmcError):
    """A GGUF file is missing, corrupt, or does not match what the model expects."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ggml_type: str          # e.g. "Q4_1", "F32", "MXFP4"
    type_id: int            # the GGUF type number
    ne: tuple[int, ...]     # GGUF order: ne[0] is the contiguous axis
    offset: int             # absolute byte offset of the data in the file
    nbytes: int

    @property
    def shape(self) -> tuple[int, ...]:
        """numpy order: the reverse of ne."""
        return tuple(reversed(self.ne))


class GGUFFile:
    """An opened GGUF file. `metadata` holds plain Python values; `tensors` maps name -> TensorInfo."""

    def __init__(self, path: str | os.PathLike):
        import gguf

        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise GGUFError(f"{self.path}: no such GGUF file")
        try:
            self._reader = gguf.GGUFReader(self.path)
        except Exception as exc:  # the reader raises ValueError, struct.error, IndexError, ...
            raise GGUFError(f"{self.path}: not a readable GGUF file: {_diagnose(self.path) or exc}") from None
        self.file_size = os.path.getsize(self.path)
        self.metadata: dict[str, Any] = {}
        for key, field in self._reader.fields.items():
            if key.startswith("GGUF."):
                continue
            try:
                self.metadata[key] = field.contents()
            except Exception as exc:
                raise GGUFError(f"{self.path}: metadata key {key!r} is unreadable: {exc}") from None
        self.tensors: dict[str, TensorInfo] = {}
        for t in self._reader.tensors:
            qtype = gguf.GGMLQuantizationType(int(t.tensor_type))
            info = TensorInfo(t.name, qtype.name, int(t.tensor_type), tuple(int(n) for n in t.shape),
                              int(t.data_offset), int(t.n_bytes))
            if info.offset + info.nbytes > self.file_size:
                raise GGUFError(f"{self.path}: tensor {t.name!r} at offset {info.offset} with {info.nbytes} "
                                f"bytes runs past the end of the file ({self.file_size} bytes)")
            self.tensors[t.name] = info
        self._raw = {t.name: t.data for t in self._reader.tensors}

    @cached_property
    def arch(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes as stored (a view of the memory-mapped file)."""
        return self._raw[name]

    def dequantize(self, name: str) -> np.ndarray:
        """The tensor as float32 in numpy order (shape = reversed ne)."""
        import gguf

        info = self.tensors[name]
        data = self._raw[name]
        if info.ggml_type == "F32":
            out = np.asarray(data, dtype=np.float32)
        else:
            out = gguf.quants.dequantize(np.asarray(data), gguf.GGMLQuantizationType(info.type_id))
        return np.ascontiguousarray(out, dtype=np.float32).reshape(info.shape)


# ---- diagnosis of files the gguf reader refuses ------------------------------------------------------------
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}   # GGUF value type -> bytes


def _diagnose(path: str) -> str | None:
    """Walk the header and tensor table; name the first tensor whose type or data range is wrong."""
    import struct

    import gguf

    data = open(path, "rb").read()
    size = len(data)
    at = 0

    def take(n: int) -> bytes:
        nonlocal at
        if at + n > size:
            raise EOFError(f"the file ends at byte {size}, inside the header at byte {at}")
        chunk = data[at:at + n]
        at += n
        return chunk

    def u32() -> int:
        return struct.unpack("<I", take(4))[0]

    def u64() -> int:
        return struct.unpack("<Q", take(8))[0]

    def string() -> str:
        return take(u64()).decode("utf-8", "replace")

    def skip_value(vtype: int) -> None:
        if vtype == 8:
            string()
        elif vtype == 9:
            inner, count = u32(), u64()
            for _ in range(count):
                skip_value(inner)
        elif vtype in _SCALAR:
            take(_SCALAR[vtype])
        else:
            raise ValueError(f"unknown metadata value type {vtype} at byte {at - 4}")

    try:
        if take(4) != b"GGUF":
            return "bad magic (not a GGUF file)"
        u32()
        n_tensors, n_kv = u64(), u64()
        alignment = 32
        for _ in range(n_kv):
            key = string()
            vtype = u32()
            if key == "general.alignment" and vtype == 4:
                alignment = u32()
            else:
                skip_value(vtype)
        infos = []
        for _ in range(n_tensors):
            info_at = at
            name = string()
            ne = [u64() for _ in range(u32())]
            infos.append((name, info_at, ne, u32(), u64()))
        start = (at + alignment - 1) // alignment * alignment
        for name, info_at, ne, ttype, offset in infos:
            if ttype not in gguf.GGML_QUANT_SIZES and ttype not in [t.value for t in gguf.GGMLQuantizationType]:
                return f"tensor {name!r} (info at byte {info_at}) has unknown type id {ttype}"
            block, nbytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ttype)]
            n = 1
            for d in ne:
                n *= d
            need = n // block * nbytes
            if start + offset + need > size:
                return (f"tensor {name!r} (info at byte {info_at}): data at offset {start + offset} + {need} bytes "
                        f"runs past the end of the file ({size} bytes)")
    except (EOFError, ValueError) as exc:
        return str(exc)
    return None
