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
            raise GGUFError(f"{self.path}: not a readable GGUF file: {exc}") from None
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
