"""Read a GGUF file: metadata, tensor table and dequantized weights.

Two readers give the same `metadata` and `tensors`:

- `read_header(path, ffi, lib)`: the C runtime's checked reader (runtime/c/llmc_gguf.c) inside a compiled
  artifact. The load path of a compiled model uses it: one bounds-checked parse in C, the vocabulary
  copied out in bulk (tens of milliseconds for 262k tokens and as many merges), no tensor data touched.
- `GGUFFile(path)`: a thin layer over the `gguf` package's reader, for the reference target and the
  compiler, which also need dequantized weights. It adds errors that name the file, tensor and byte
  offset; ggml type names; and numpy-order shapes (GGUF `ne` is reversed).
"""
from __future__ import annotations

import os
import struct
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


# ---- the C reader -----------------------------------------------------------------------------------------
# cffi declarations of the reader functions an artifact exports (runtime/c/llmc_gguf.h).
GGUF_CDEF = """
typedef struct llmc_gguf llmc_gguf;
typedef struct {
    const char *name; int type; int n_dims; int64_t ne[4]; size_t nbytes; uint64_t offset; const void *data;
} llmc_gguf_tensor;
llmc_gguf *llmc_gguf_open(const char *path, char *err, size_t err_len);
void llmc_gguf_close(llmc_gguf *g);
int llmc_gguf_n_tensors(const llmc_gguf *g);
const llmc_gguf_tensor *llmc_gguf_tensor_at(const llmc_gguf *g, int i);
int llmc_gguf_n_kv(const llmc_gguf *g);
int llmc_gguf_kv_at(const llmc_gguf *g, int i, const char **key, size_t *key_len, int *type, const void **value,
                    size_t *value_len);
int llmc_gguf_string_array_spans(const llmc_gguf *g, int i, uint64_t count, uint64_t *starts, uint64_t *lens);
const char *llmc_gguf_type_name(int type);
"""
_STRING, _ARRAY = 8, 9
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_ARRAY_DTYPES = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8",
                 11: "<i8", 12: "<f8"}


@dataclass
class GGUFHeader:
    """A GGUF file's metadata and tensor table, without its data (what binding and the tokenizer need)."""
    path: str
    file_size: int
    metadata: dict[str, Any]
    tensors: dict[str, TensorInfo]

    @property
    def arch(self) -> str:
        return str(self.metadata.get("general.architecture", ""))


def read_header(path: str | os.PathLike, ffi, lib) -> GGUFHeader:
    """Metadata and tensor table through the C reader in `lib` (declared with GGUF_CDEF). The reader checks
    the whole file when it opens it; a bad file raises GGUFError with its message (place and byte offset)."""
    path = os.fspath(path)
    err = ffi.new("char[]", 1024)
    g = lib.llmc_gguf_open(os.fsencode(path), err, 1024)
    if g == ffi.NULL:
        raise GGUFError(ffi.string(err).decode(errors="replace"))
    try:
        metadata = {}
        key, key_len, vtype = ffi.new("const char **"), ffi.new("size_t *"), ffi.new("int *")
        value, value_len = ffi.new("const void **"), ffi.new("size_t *")
        for i in range(lib.llmc_gguf_n_kv(g)):
            lib.llmc_gguf_kv_at(g, i, key, key_len, vtype, value, value_len)
            name = ffi.unpack(key[0], key_len[0]).decode("utf-8", errors="replace")
            raw = ffi.buffer(value[0], value_len[0])[:]
            try:
                if vtype[0] == _STRING:               # the reader gives a string's characters alone
                    metadata[name] = raw.decode("utf-8")
                elif vtype[0] == _ARRAY and raw[:4] == struct.pack("<I", _STRING):
                    metadata[name] = _string_array(ffi, lib, g, i, raw)
                else:
                    metadata[name] = _decode_value(vtype[0], raw, 0)[0]
            except UnicodeDecodeError as exc:
                raise GGUFError(f"{path}: metadata key {name!r} holds a string that is not UTF-8: {exc}") from None
        tensors = {}
        for i in range(lib.llmc_gguf_n_tensors(g)):
            t = lib.llmc_gguf_tensor_at(g, i)
            name = ffi.string(t.name).decode("utf-8", errors="replace")
            tensors[name] = TensorInfo(name, ffi.string(lib.llmc_gguf_type_name(t.type)).decode(), int(t.type),
                                       tuple(t.ne[0:t.n_dims]), int(t.offset), int(t.nbytes))
        return GGUFHeader(path, os.path.getsize(path), metadata, tensors)
    finally:
        lib.llmc_gguf_close(g)


def _string_array(ffi, lib, g, index: int, raw: bytes) -> list[str]:
    """A string array in bulk. The reader gives each string's span; numpy keeps the strings and the last
    byte of each length prefix, set to NUL as a separator; one decode and one split make the list. Strict
    UTF-8 over the whole equals strict UTF-8 per string, since NUL is a character of its own. Strings that
    themselves hold NUL are decoded one by one."""
    count = struct.unpack_from("<Q", raw, 4)[0]
    if count == 0:
        return []
    starts, lens = np.empty(count, np.int64), np.empty(count, np.int64)
    lib.llmc_gguf_string_array_spans(g, index, count, ffi.cast("uint64_t *", starts.ctypes.data),
                                     ffi.cast("uint64_t *", lens.ctypes.data))
    data = np.frombuffer(raw, np.uint8).copy()
    edges = np.zeros(len(raw) + 1, np.int8)        # +1 where a kept run starts, -1 where it ends
    edges[starts - 1] += 1
    edges[starts + lens] -= 1
    data[starts - 1] = 0
    kept = data[np.cumsum(edges[:-1], dtype=np.int8).view(bool)]      # runs never overlap: 0 or 1
    if np.count_nonzero(kept == 0) == count:
        return kept.tobytes().decode("utf-8").split("\0")[1:]
    return [raw[a:a + n].decode("utf-8") for a, n in zip(starts.tolist(), lens.tolist())]


def _decode_value(vtype: int, raw: bytes, at: int) -> tuple[Any, int]:
    """(value, bytes used) of one value at raw[at:], which the C reader already checked. Arrays of
    scalars are read with numpy in one step."""
    if vtype in _SCALARS:
        fmt = _SCALARS[vtype]
        return struct.unpack_from(fmt, raw, at)[0], struct.calcsize(fmt)
    if vtype == _STRING:
        n = struct.unpack_from("<Q", raw, at)[0]
        return raw[at + 8:at + 8 + n].decode("utf-8"), 8 + n
    elem, count = struct.unpack_from("<IQ", raw, at)
    if elem in _ARRAY_DTYPES:
        dtype = np.dtype(_ARRAY_DTYPES[elem])
        return np.frombuffer(raw, dtype, count, at + 12).tolist(), 12 + count * dtype.itemsize
    items, used = [], 12
    for _ in range(count):
        item, n = _decode_value(elem, raw, at + used)
        items.append(item)
        used += n
    return items, used


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
