"""The C GGUF reader (runtime/c/llmc_gguf.c) against the Python reader, and against corrupt files.

The library is built with gcc into a temporary directory and called through cffi in ABI mode. The real
model file is compared in-process. Corrupt and fuzzed files are opened in a child Python process (the
"probe"), under AddressSanitizer + UBSan when libasan is available, so a crash fails one test instead
of killing the test runner.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import llmc.runtime
import numpy as np
import pytest

C_DIR = Path(llmc.runtime.__file__).parent / "c"
HEADER = C_DIR / "llmc_gguf.h"
SOURCE = C_DIR / "llmc_gguf.c"
CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L", "-shared", "-fPIC"]
# Without mmap the file sits in a heap buffer of exactly its size, so ASan catches any read past the end
# (in a mapping, the rest of the last page would read as zeros).
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer", "-DLLMC_GGUF_NO_MMAP"]
ERR_LEN = 1024


def cdef_from_header(text: str) -> str:
    """The header as cffi cdef text: no include guard, includes or C++ wrapper; #define constants kept."""
    text = re.sub(r"#ifdef __cplusplus.*?#endif", "", text, flags=re.DOTALL)
    keep = [line for line in text.splitlines()
            if not line.startswith("#") or re.match(r"#define LLMC_\w+ \d+$", line)]
    return "\n".join(keep)


# ---- building and loading the library -------------------------------------------------------------------

@dataclass(frozen=True)
class Built:
    lib_path: Path        # plain build, loaded in-process
    probe_lib: Path       # the build the probe loads: sanitized if possible, else plain
    probe_env: dict
    cdef_path: Path
    why_plain: str        # why the probe is not sanitized; "" when it is


def _compile(out: Path, extra: list[str]) -> None:
    cmd = ["gcc", *CFLAGS, *extra, str(SOURCE), "-o", str(out)]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr}"
    assert result.stderr == "", f"warnings:\n{result.stderr}"


def _asan_env() -> dict | None:
    cmd = ["gcc", "-print-file-name=libasan.so"]
    found = subprocess.run(cmd, check=False, capture_output=True, text=True)
    libasan = found.stdout.strip()
    if not os.path.isabs(libasan):
        return None
    env = dict(os.environ)
    # Python itself leaks by LSan's standards; memory errors and UB in the library are what we look for.
    env.update(LD_PRELOAD=libasan, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("llmc_gguf")
    cdef_path = out / "llmc_gguf.cdef"
    cdef_path.write_text(cdef_from_header(HEADER.read_text()))
    plain = out / "libllmc_gguf.so"
    _compile(plain, [])
    env = _asan_env()
    if env is None:
        return Built(plain, plain, dict(os.environ), cdef_path, "gcc has no libasan")
    sanitized = out / "libllmc_gguf_asan.so"
    _compile(sanitized, SANITIZE)
    result = _run_probe_raw(cdef_path, sanitized, env, [str(out / "missing.gguf")])
    if result.returncode != 0:
        return Built(plain, plain, dict(os.environ), cdef_path, f"ASan probe failed:\n{result.stderr[-2000:]}")
    return Built(plain, sanitized, env, cdef_path, "")


@pytest.fixture(scope="module")
def lib(built):
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(built.cdef_path.read_text())
    return ffi, ffi.dlopen(str(built.lib_path))


class CGGUF:
    """A file opened by the C reader in this process."""

    def __init__(self, lib, path):
        self.ffi, self.lib = lib
        err = self.ffi.new("char[]", ERR_LEN)
        self.handle = self.lib.llmc_gguf_open(os.fsencode(path), err, ERR_LEN)
        self.error = self.ffi.string(err).decode()
        assert self.handle != self.ffi.NULL, self.error

    def close(self):
        self.lib.llmc_gguf_close(self.handle)

    def tensors(self) -> list:
        n = self.lib.llmc_gguf_n_tensors(self.handle)
        return [self.lib.llmc_gguf_tensor_at(self.handle, i) for i in range(n)]

    def get(self, kind: str, key: str):
        out = self.ffi.new({"i64": "int64_t *", "f64": "double *", "bool": "int *"}[kind])
        rc = getattr(self.lib, f"llmc_gguf_get_{kind}")(self.handle, key.encode(), out)
        return rc, out[0]

    def get_str(self, key: str):
        out, n = self.ffi.new("const char **"), self.ffi.new("size_t *")
        rc = self.lib.llmc_gguf_get_str(self.handle, key.encode(), out, n)
        return rc, (self.ffi.unpack(out[0], n[0]) if rc == 0 else None)


# ---- the probe: opens files in a child process ---------------------------------------------------------

PROBE = r'''
import json, os, sys, cffi
cdef_path, lib_path, *paths = sys.argv[1:]
ffi = cffi.FFI()
ffi.cdef(open(cdef_path).read())
lib = ffi.dlopen(lib_path)
err = ffi.new("char[]", 1024)
for path in paths:
    print(json.dumps({"start": path}), flush=True)
    g = lib.llmc_gguf_open(path.encode(), err, 1024)
    result = {"path": path, "ok": g != ffi.NULL, "err": ffi.string(err).decode(errors="replace"), "bad": []}
    if g != ffi.NULL:
        # Everything the reader hands out must be usable: touch the first and last byte of every tensor.
        size = os.path.getsize(path)
        for i in range(lib.llmc_gguf_n_tensors(g)):
            t = lib.llmc_gguf_tensor_at(g, i)
            data = ffi.cast("const unsigned char *", t.data)
            if t.offset + t.nbytes > size or lib.llmc_gguf_find_tensor(g, t.name) != t:
                result["bad"].append(ffi.string(t.name).decode(errors="replace"))
            if t.nbytes:
                data[0] + data[t.nbytes - 1]
        # Every metadata value handed out lies in the file: touch its ends; string arrays give their spans.
        key, key_len, vtype = ffi.new("const char **"), ffi.new("size_t *"), ffi.new("int *")
        value, value_len = ffi.new("const void **"), ffi.new("size_t *")
        for i in range(lib.llmc_gguf_n_kv(g)):
            lib.llmc_gguf_kv_at(g, i, key, key_len, vtype, value, value_len)
            raw = ffi.cast("const unsigned char *", value[0])
            if value_len[0]:
                raw[0] + raw[value_len[0] - 1]
            if vtype[0] == 9 and bytes(ffi.buffer(raw, 4)) == b"\x08\0\0\0":
                count = ffi.cast("const uint64_t *", raw + 4)[0]
                starts, lens = ffi.new("uint64_t[]", count), ffi.new("uint64_t[]", count)
                lib.llmc_gguf_string_array_spans(g, i, count, starts, lens)
                if count and starts[count - 1] + lens[count - 1] != value_len[0]:
                    result["bad"].append(ffi.unpack(key[0], key_len[0]).decode(errors="replace"))
        for key in (b"general.alignment", b"general.architecture", b"general.name"):
            lib.llmc_gguf_get_i64(g, key, ffi.new("int64_t *"))
            lib.llmc_gguf_get_f64(g, key, ffi.new("double *"))
            lib.llmc_gguf_get_str(g, key, ffi.new("const char **"), ffi.new("size_t *"))
        result["n_tensors"] = lib.llmc_gguf_n_tensors(g)
        result["tensors"] = [
            [ffi.string(t.name).decode(errors="replace"), t.type, list(t.ne)[:t.n_dims], t.offset, t.nbytes]
            for t in (lib.llmc_gguf_tensor_at(g, i) for i in range(result["n_tensors"]))]
        lib.llmc_gguf_close(g)
    print(json.dumps(result), flush=True)
'''


def _run_probe_raw(cdef_path, lib_path, env, paths: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", PROBE, str(cdef_path), str(lib_path), *paths]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=120)


def probe(built: Built, paths: list) -> list[dict]:
    """Opens each file in a child process; fails the test if the child crashes or sanitizers complain."""
    result = _run_probe_raw(built.cdef_path, built.probe_lib, built.probe_env, [str(p) for p in paths])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    in_flight = lines[-1].get("start") if lines else None
    assert result.returncode == 0, \
        f"probe crashed (rc {result.returncode}) on {in_flight}:\n{result.stderr[-4000:]}"
    assert "runtime error" not in result.stderr, result.stderr[-4000:]
    results = [line for line in lines if "start" not in line]
    assert len(results) == len(paths)
    for r in results:
        assert r["ok"] or r["err"], f"{r['path']}: open failed without a message"
        assert not r["bad"], f"{r['path']}: tensors with bad ranges or lookups: {r['bad']}"
    return results


# ---- writing GGUF files byte by byte ---------------------------------------------------------------------

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
T_F32, T_Q4_1, T_Q8_0 = 0, 3, 8


def gstr(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return gstr(key) + struct.pack("<I", vtype) + payload


@dataclass
class Tensor:
    name: str
    ne: list[int]
    type: int
    data: bytes
    offset: int | None = None   # relative to the data section; None = next aligned position
    n_dims: int | None = None   # None = len(ne)


@dataclass
class Layout:
    """Where the builder put things, for expected error messages."""
    data: bytes
    kv_at: dict[str, int] = field(default_factory=dict)
    info_at: dict[str, int] = field(default_factory=dict)
    data_start: int = 0
    offsets: dict[str, int] = field(default_factory=dict)   # absolute


def build(kvs: list[tuple[str, int, bytes]], tensors: list[Tensor], *, magic=b"GGUF", version=3,
          n_tensors=None, n_kv=None, alignment=32) -> Layout:
    out = bytearray(magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                        len(kvs) if n_kv is None else n_kv))
    layout = Layout(b"")
    for key, vtype, payload in kvs:
        layout.kv_at[key] = len(out)
        out += kv(key, vtype, payload)
    next_offset, offsets = 0, []
    for t in tensors:
        offsets.append(next_offset if t.offset is None else t.offset)
        next_offset += -(-len(t.data) // alignment) * alignment
    for t, offset in zip(tensors, offsets):
        layout.info_at[t.name] = len(out)
        n_dims = len(t.ne) if t.n_dims is None else t.n_dims
        out += gstr(t.name) + struct.pack("<I", n_dims)
        out += b"".join(struct.pack("<Q", n % 2**64) for n in t.ne)
        out += struct.pack("<IQ", t.type, offset)
    out += bytes(-len(out) % alignment)
    layout.data_start = len(out)
    for t, offset in zip(tensors, offsets):
        layout.offsets[t.name] = layout.data_start + offset
        if t.offset is None:
            out += t.data + bytes(-len(t.data) % alignment)
    layout.data = bytes(out)
    return layout


def base_kvs() -> list[tuple[str, int, bytes]]:
    return [
        ("general.architecture", STRING, gstr("llama")),
        ("general.name", STRING, gstr("tiny test")),
        ("llama.block_count", U32, struct.pack("<I", 2)),
        ("llama.rope.freq_base", F32, struct.pack("<f", 10000.0)),
        ("test.negative", I64, struct.pack("<q", -5)),
        ("test.huge", U64, struct.pack("<Q", 2**64 - 1)),
        ("test.small", I8, struct.pack("<b", -3)),
        ("test.flag", BOOL, b"\x01"),
        ("test.words", ARRAY, struct.pack("<IQ", STRING, 2) + gstr("a") + gstr("bc")),
        ("test.nested", ARRAY, struct.pack("<IQ", ARRAY, 2) + struct.pack("<IQ", U8, 2) + b"\x01\x02"
         + struct.pack("<IQ", I16, 1) + b"\xff\xff"),
    ]


def base_tensors() -> list[Tensor]:
    return [
        Tensor("token_embd.weight", [4, 2], T_F32, np.arange(8, dtype=np.float32).tobytes()),
        Tensor("blk.0.attn_q.weight", [64, 2], T_Q8_0, bytes(range(136))),
        Tensor("blk.0.ffn_up.weight", [32, 3], T_Q4_1, bytes(60)),
    ]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---- the real model --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2():
    import llmc.fetch

    try:
        return Path(llmc.fetch.smollm2())
    except Exception as exc:  # noqa: BLE001 -- offline and not cached, whatever the cause
        pytest.skip(f"SmolLM2 GGUF not available: {exc}")


def compare_with_python_reader(lib, path: Path) -> None:
    """Every tensor and metadata value the C reader returns equals what GGUFFile says."""
    import gguf
    from llmc.runtime.gguf_file import GGUFFile

    py = GGUFFile(path)
    c = CGGUF(lib, path)
    ffi, clib = lib
    try:
        tensors = c.tensors()
        assert [ffi.string(t.name).decode() for t in tensors] == list(py.tensors)
        for t in tensors:
            info = py.tensors[ffi.string(t.name).decode()]
            ne = tuple(t.ne[j] for j in range(t.n_dims))
            assert (t.type, ne, t.offset, t.nbytes) == (info.type_id, info.ne, info.offset, info.nbytes)
            assert ffi.string(clib.llmc_gguf_type_name(t.type)).decode() == info.ggml_type
            assert int(ffi.cast("uintptr_t", t.data)) - int(ffi.cast("uintptr_t", tensors[0].data)) \
                == t.offset - tensors[0].offset
            assert clib.llmc_gguf_find_tensor(c.handle, t.name) == t
            raw = np.asarray(py.raw(info.name)).tobytes()
            assert ffi.buffer(ffi.cast("const char *", t.data), t.nbytes)[:] == raw
        assert clib.llmc_gguf_find_tensor(c.handle, b"no.such.tensor") == ffi.NULL

        ints = {gguf.GGUFValueType.UINT8, gguf.GGUFValueType.INT8, gguf.GGUFValueType.UINT16,
                gguf.GGUFValueType.INT16, gguf.GGUFValueType.UINT32, gguf.GGUFValueType.INT32,
                gguf.GGUFValueType.UINT64, gguf.GGUFValueType.INT64}
        floats = {gguf.GGUFValueType.FLOAT32, gguf.GGUFValueType.FLOAT64}
        for key, fld in py._reader.fields.items():
            if key.startswith("GGUF."):
                continue
            value, vtype = py.metadata[key], fld.types[0]
            assert clib.llmc_gguf_has_key(c.handle, key.encode())
            if vtype in ints and value > 2**63 - 1:
                assert c.get("i64", key)[0] == clib.LLMC_GGUF_RANGE
                assert c.get("f64", key) == (clib.LLMC_GGUF_OK, float(value))
            elif vtype in ints:
                assert c.get("i64", key) == (clib.LLMC_GGUF_OK, value), key
                assert c.get("f64", key) == (clib.LLMC_GGUF_OK, float(value)), key
            elif vtype in floats:
                assert c.get("f64", key) == (clib.LLMC_GGUF_OK, value), key
                assert c.get("i64", key)[0] == clib.LLMC_GGUF_WRONG_TYPE
            elif vtype == gguf.GGUFValueType.BOOL:
                assert c.get("bool", key) == (clib.LLMC_GGUF_OK, int(value)), key
            elif vtype == gguf.GGUFValueType.STRING:
                assert c.get_str(key) == (clib.LLMC_GGUF_OK, fld.parts[-1].tobytes()), key
                assert c.get("i64", key)[0] == clib.LLMC_GGUF_WRONG_TYPE
            else:  # arrays are walked and checked but not returned
                assert vtype == gguf.GGUFValueType.ARRAY
                assert c.get_str(key)[0] == clib.LLMC_GGUF_WRONG_TYPE
        assert c.get("i64", "no.such.key")[0] == clib.LLMC_GGUF_MISSING
        assert not clib.llmc_gguf_has_key(c.handle, b"no.such.key")
    finally:
        c.close()


def test_smollm2_matches_python_reader(lib, smollm2):
    compare_with_python_reader(lib, smollm2)


def test_smollm2_lookups_are_fast(lib, smollm2):
    import time

    c = CGGUF(lib, smollm2)
    try:
        names = [c.ffi.string(t.name) for t in c.tensors()]
        assert len(names) == 272
        start = time.perf_counter()
        for _ in range(300):
            for name in names:
                c.lib.llmc_gguf_find_tensor(c.handle, name)
        assert time.perf_counter() - start < 2.0  # mostly cffi call overhead; linear scans would show
    finally:
        c.close()


def test_probe_is_sanitized(built):
    if built.why_plain == "gcc has no libasan":
        pytest.skip(built.why_plain)
    assert built.why_plain == ""


def test_smollm2_under_sanitizers(built, smollm2):
    [result] = probe(built, [smollm2])
    assert result["ok"] and result["n_tensors"] == 272, result["err"]


def test_handwritten_file_matches_python_reader(lib, tmp_path):
    """Also checks the test's own GGUF builder: the gguf package must read its files the same way."""
    path = write(tmp_path, "base.gguf", build(base_kvs(), base_tensors()).data)
    compare_with_python_reader(lib, path)
    c = CGGUF(lib, path)
    try:
        assert c.get("i64", "test.huge")[0] == c.lib.LLMC_GGUF_RANGE
        assert c.get("i64", "test.small") == (0, -3)
        assert c.get_str("general.name") == (0, b"tiny test")
    finally:
        c.close()


def test_gguf_writer_file_matches_python_reader(lib, tmp_path):
    path = tmp_path / "writer.gguf"
    small_writer_file(path)
    compare_with_python_reader(lib, path)


def header_matches_python_reader(lib, path: Path) -> dict:
    """Python's loader reads metadata and tensor table through the C reader (read_header): the same values,
    with the same Python types, as the gguf package gives. Returns the header's metadata."""
    from llmc.runtime.gguf_file import GGUFFile, read_header

    header = read_header(path, *lib)
    py = GGUFFile(path)
    assert header.tensors == py.tensors and header.arch == py.arch
    assert list(header.metadata) == list(py.metadata)
    for key, want in py.metadata.items():
        got = header.metadata[key]
        if key == "test.nested":       # the gguf package flattens nested arrays; the C reader keeps them
            continue
        assert got == want and type(got) is type(want), key
        if isinstance(want, list):
            assert [type(v) for v in got] == [type(v) for v in want], key
    return header.metadata


def test_header_reader_matches_python_reader(lib, tmp_path, smollm2):
    metadata = header_matches_python_reader(lib, write(tmp_path, "base.gguf", build(base_kvs(), base_tensors()).data))
    assert metadata["test.nested"] == [[1, 2], [-1]] and metadata["test.huge"] == 2**64 - 1
    small_writer_file(tmp_path / "writer.gguf")
    header_matches_python_reader(lib, tmp_path / "writer.gguf")
    assert len(header_matches_python_reader(lib, smollm2)["tokenizer.ggml.tokens"]) == 49152


def test_header_reader_errors_are_the_c_readers(lib, tmp_path):
    from llmc.runtime.gguf_file import GGUFError, read_header

    data, expected = CORRUPT_CASES["string_in_array_past_end"]()
    path = write(tmp_path, "bad.gguf", data)
    with pytest.raises(GGUFError) as info:
        read_header(path, *lib)
    assert str(info.value).startswith(f"{path}: ") and all(fragment in str(info.value) for fragment in expected)
    bad_utf8 = write(tmp_path, "utf8.gguf", _with_kv("test.text", STRING, gstr(b"\xff\xfe")).data)
    with pytest.raises(GGUFError, match="metadata key 'test.text' holds a string that is not UTF-8"):
        read_header(bad_utf8, *lib)
    # "é" cut between two elements is valid UTF-8 only when the strings are joined: still an error
    split = struct.pack("<IQ", STRING, 2) + gstr(b"\xc3") + gstr(b"\xa9")
    with pytest.raises(GGUFError, match="metadata key .test.split. holds a string that is not UTF-8"):
        read_header(write(tmp_path, "split.gguf", _with_kv("test.split", ARRAY, split).data), *lib)


def test_header_reader_string_arrays_in_bulk(lib, tmp_path):
    """The bulk path (one decode, NUL separators) and its fallback for strings holding NUL."""
    from llmc.runtime.gguf_file import read_header

    words = ["", "a", "Ġthe", "é中🦙", "", "x y"]
    kvs = [("general.architecture", STRING, gstr("llama")),
           ("test.words", ARRAY, struct.pack("<IQ", STRING, len(words)) + b"".join(gstr(w) for w in words)),
           ("test.nul", ARRAY, struct.pack("<IQ", STRING, 3) + gstr("a\0b") + gstr("\0") + gstr("c")),
           ("test.none", ARRAY, struct.pack("<IQ", STRING, 0))]
    metadata = read_header(write(tmp_path, "words.gguf", build(kvs, []).data), *lib).metadata
    assert metadata["test.words"] == words
    assert metadata["test.nul"] == ["a\0b", "\0", "c"] and metadata["test.none"] == []


def test_type_tables(lib):
    _, clib = lib
    expected = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
                6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
                10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
                13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
                30: ("BF16", 1, 2), 39: ("MXFP4", 32, 17)}
    import gguf

    for type_id in range(64):
        name = lib[0].string(clib.llmc_gguf_type_name(type_id)).decode()
        size, nbytes = clib.llmc_gguf_type_block_size(type_id), clib.llmc_gguf_type_block_bytes(type_id)
        if type_id in expected:
            assert (name, size, nbytes) == expected[type_id]
        if name != "?":  # whatever the C side knows must agree with gguf-py
            qtype = gguf.GGMLQuantizationType(type_id)
            assert (name, size, nbytes) == (qtype.name, *gguf.GGML_QUANT_SIZES[qtype])
        else:
            assert (size, nbytes) == (0, 0)
    assert lib[0].string(clib.llmc_gguf_type_name(-1)) == b"?"


# ---- corrupt files ---------------------------------------------------------------------------------------

def _with_kv(key, vtype, payload):
    return build(base_kvs() + [(key, vtype, payload)], base_tensors())


def _with_tensor(tensor):
    return build(base_kvs(), base_tensors() + [tensor])


def _case_truncated_header():
    return build(base_kvs(), base_tensors()).data[:10], [
        "header: truncated: tensor count at byte 8 needs 8 bytes, but the file ends 2 bytes later"]


def _case_truncated_kv():
    base = build(base_kvs(), base_tensors())
    at = base.kv_at["test.words"]
    second = at + len(gstr("test.words")) + 4 + 12 + len(gstr("a"))  # the second string in the array
    return base.data[:second + 9], [f"metadata key 'test.words' (at byte {at})",
                                    f"string length 2 at byte {second} runs past the end of the file"]


def _case_truncated_tensor_info():
    base = build(base_kvs(), base_tensors())
    at = base.info_at["blk.0.attn_q.weight"]
    cut = at + len(gstr("blk.0.attn_q.weight")) + 4 + 5  # inside ne[0]
    return base.data[:cut], [f"tensor 'blk.0.attn_q.weight' (info at byte {at}): truncated: ne at byte"]


def _case_truncated_data():
    base = build(base_kvs(), base_tensors())
    size = len(base.data) - 10
    at, offset = base.info_at["blk.0.ffn_up.weight"], base.offsets["blk.0.ffn_up.weight"]
    return base.data[:size], [(f"tensor 'blk.0.ffn_up.weight' (info at byte {at}): data at offset {offset} "
                               f"+ 60 bytes runs past the end of the file ({size} bytes)")]


def _case_truncated_before_data():
    base = build(base_kvs(), base_tensors())
    at = base.info_at["token_embd.weight"]
    return base.data[:base.data_start - 3], [
        f"tensor 'token_embd.weight' (info at byte {at}): data at offset {base.data_start} + 32 bytes",
        "runs past the end of the file"]


def _case_huge_tensor_offset():
    t = Tensor("far.weight", [8], T_F32, b"", offset=2**40)
    base = _with_tensor(t)
    return base.data, [f"tensor 'far.weight' (info at byte {base.info_at['far.weight']}): ",
                       f"data at offset {base.data_start + 2**40} + 32 bytes runs past the end of the file"]


def _case_offset_wraps():
    t = Tensor("wrap.weight", [8], T_F32, b"", offset=2**64 - 32)
    return _with_tensor(t).data, ["tensor 'wrap.weight'", f"data offset {2**64 - 32} (relative",
                                  "runs past the end of the file"]


def _case_bad_alignment():
    base = _with_kv("general.alignment", U32, struct.pack("<I", 48))
    return base.data, [f"metadata key 'general.alignment' (at byte {base.kv_at['general.alignment']})",
                       "48 is not a power of two"]


CORRUPT_CASES = {
    "truncated_header": _case_truncated_header,
    "truncated_kv": _case_truncated_kv,
    "truncated_tensor_info": _case_truncated_tensor_info,
    "truncated_data": _case_truncated_data,
    "truncated_before_data": _case_truncated_before_data,
    "empty_file": lambda: (b"", ["empty file"]),
    "bad_magic": lambda: (b"GGML" + build(base_kvs(), base_tensors()).data[4:],
                          ["header: bad magic 47 47 4d 4c at byte 0", "not a GGUF file"]),
    "version_1": lambda: (build([], [], version=1).data, ["GGUF version 1 is not supported"]),
    "version_4": lambda: (build([], [], version=4).data, ["unsupported GGUF version 4 at byte 4"]),
    "big_endian": lambda: (build([], [], version=3 << 24).data, ["big-endian GGUF files are not supported"]),
    "huge_tensor_count": lambda: (build([], [], n_tensors=2**62).data,
                                  [f"tensor count {2**62} at byte 8 is impossible"]),
    "huge_kv_count": lambda: (build([], [], n_kv=2**63).data, [f"metadata count {2**63} at byte 16"]),
    "string_past_end": lambda: (
        _with_kv("general.basename", STRING, struct.pack("<Q", 2**40) + b"abc").data,
        ["metadata key 'general.basename'", f"string length {2**40} at byte", "runs past the end"]),
    "key_too_long": lambda: (build(base_kvs(), []).data[:24] + struct.pack("<Q", 2**20) + bytes(2**20),
                             [f"key length {2**20} at byte 24 is over the limit of 65535 bytes"]),
    "huge_array_count": lambda: (
        _with_kv("test.ids", ARRAY, struct.pack("<IQ", U32, 2**62)).data,
        ["metadata key 'test.ids'", f"array of {2**62} u32 elements", "only"]),
    "huge_string_array_count": lambda: (
        _with_kv("tokenizer.ggml.tokens", ARRAY, struct.pack("<IQ", STRING, 2**61) + gstr("a")).data,
        ["metadata key 'tokenizer.ggml.tokens'", f"array of {2**61} string elements"]),
    "string_in_array_past_end": lambda: (
        _with_kv("tokenizer.ggml.tokens", ARRAY,
                 struct.pack("<IQ", STRING, 2) + gstr("a") + struct.pack("<Q", 2**33)).data,
        ["metadata key 'tokenizer.ggml.tokens'", f"string length {2**33}", "past the end"]),
    "arrays_too_deep": lambda: (
        _with_kv("test.deep", ARRAY, struct.pack("<IQ", ARRAY, 1) * 5 + struct.pack("<IQ", U8, 0)).data,
        ["metadata key 'test.deep'", "arrays nested deeper than 4"]),
    "unknown_value_type": lambda: (_with_kv("test.odd", 13, b"\0" * 8).data,
                                   ["metadata key 'test.odd'", "unknown value type 13"]),
    "unknown_array_type": lambda: (_with_kv("test.odd", ARRAY, struct.pack("<IQ", 77, 0)).data,
                                   ["metadata key 'test.odd'", "unknown array element type 77"]),
    "duplicate_key": lambda: (_with_kv("general.name", STRING, gstr("again")).data,
                              ["metadata key 'general.name'", "duplicate metadata key"]),
    "alignment_not_power_of_two": _case_bad_alignment,
    "alignment_not_integer": lambda: (_with_kv("general.alignment", STRING, gstr("32")).data,
                                      ["general.alignment", "must be an integer"]),
    "n_dims_5": lambda: (_with_tensor(Tensor("five.weight", [1, 1, 1, 1, 32], T_F32, bytes(128))).data,
                         ["tensor 'five.weight'", "n_dims = 5 at byte", "maximum of 4"]),
    "unknown_type": lambda: (_with_tensor(Tensor("odd.weight", [32], 99, bytes(32))).data,
                             ["tensor 'odd.weight'", "unknown ggml type id 99 at byte"]),
    "block_size": lambda: (_with_tensor(Tensor("odd.weight", [33, 2], T_Q8_0, bytes(68))).data,
                           ["tensor 'odd.weight'", "ne[0] = 33 is not a multiple of the Q8_0 block size 32"]),
    "negative_ne": lambda: (_with_tensor(Tensor("neg.weight", [4, -1], T_F32, bytes(16))).data,
                            ["tensor 'neg.weight'", "ne[1] = -1 at byte", "is negative"]),
    "ne_product_overflow": lambda: (
        _with_tensor(Tensor("big.weight", [2**40, 2**40], T_F32, b"")).data,
        ["tensor 'big.weight'", f"element count of ne = [{2**40}, {2**40}] overflows"]),
    "nbytes_overflow": lambda: (_with_tensor(Tensor("big.weight", [2**62], T_F32, b"")).data,
                                ["tensor 'big.weight'", f"byte size of F32 [{2**62}] overflows"]),
    "misaligned_offset": lambda: (_with_tensor(Tensor("odd.weight", [8], T_F32, b"", offset=4)).data,
                                  ["tensor 'odd.weight'", "data offset 4 (relative to the data section)",
                                   "is not a multiple of the alignment 32"]),
    "offset_past_end": _case_huge_tensor_offset,
    "offset_wraps": _case_offset_wraps,
    "duplicate_tensor": lambda: (_with_tensor(Tensor("token_embd.weight", [8], T_F32, bytes(32))).data,
                                 ["tensor 'token_embd.weight'", "duplicate tensor name (first at info byte"]),
    "nul_in_name": lambda: (_with_tensor(Tensor("a\0b", [8], T_F32, bytes(32))).data,
                            ["tensor 'a?b'", "name contains a NUL byte"]),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_CASES))
def test_corrupt_file_is_a_clear_error(built, tmp_path, case):
    data, expected = CORRUPT_CASES[case]()
    path = write(tmp_path, f"{case}.gguf", data)
    [result] = probe(built, [path])
    assert not result["ok"], f"{case}: the corrupt file was accepted"
    assert result["err"].startswith(f"{path}: "), result["err"]
    for fragment in expected:
        assert fragment in result["err"], f"{case}: {fragment!r} not in {result['err']!r}"


def test_missing_file(lib, tmp_path):
    ffi, clib = lib
    err = ffi.new("char[]", ERR_LEN)
    assert clib.llmc_gguf_open(str(tmp_path / "nope.gguf").encode(), err, ERR_LEN) == ffi.NULL
    assert ffi.string(err).decode() == f"{tmp_path / 'nope.gguf'}: cannot open: No such file or directory"


def test_short_error_buffer_is_truncated_not_overrun(lib, tmp_path):
    ffi, clib = lib
    path = write(tmp_path, "bad.gguf", b"GGUX" + bytes(20))
    err = ffi.new("char[]", 16)
    err[15] = b"!"
    assert clib.llmc_gguf_open(str(path).encode(), err, 15) == ffi.NULL
    assert len(ffi.string(err)) == 14 and err[15] == b"!"
    assert clib.llmc_gguf_open(str(path).encode(), ffi.NULL, 0) == ffi.NULL


# ---- fuzzing ---------------------------------------------------------------------------------------------

def small_writer_file(path: Path) -> None:
    """A small valid GGUF written by the gguf package, mostly header so mutations hit the parser."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("fuzz")
    w.add_block_count(1)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_bool("test.flag", True)
    w.add_array("test.words", ["a", "bc", "def"])
    w.add_array("test.nested", [[1, 2], [3]])
    w.add_tensor("token_embd.weight", np.arange(8, dtype=np.float32).reshape(2, 4))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((1, 34), np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.ffn_up.weight", np.zeros((2, 20), np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q4_1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def field_positions(path: Path) -> list[int]:
    """Byte offsets of every header, metadata and tensor-info field, where mutations do the most damage."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    positions = {0}
    for fld in [*reader.fields.values(), *(t.field for t in reader.tensors)]:
        at = fld.offset
        for part in fld.parts:
            positions.add(at)
            at += part.nbytes
    return sorted(positions)


INTERESTING_U32 = [0, 1, 4, 5, 8, 9, 12, 13, 31, 33, 99, 2**31, 2**32 - 1]
INTERESTING_U64 = [0, 1, 5, 31, 33, 2**31, 2**32 - 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64 - 32]


def mutate(data: bytes, edits: list[tuple[int, str, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for pos, kind, value in edits:
        pos %= len(out)
        if kind == "byte":
            out[pos] = value % 256
        elif kind == "flip":
            out[pos] ^= 1 << (value % 8)
        else:  # overwrite a little-endian integer (clipped at the end) with an interesting value
            word = (struct.pack("<I", INTERESTING_U32[value % len(INTERESTING_U32)]) if kind == "u32"
                    else struct.pack("<Q", INTERESTING_U64[value % len(INTERESTING_U64)]))
            out[pos:pos + len(word)] = word[:len(out) - pos]
    return bytes(out[:cut] if cut is not None else out)


def check_against_python_reader(result: dict) -> str | None:
    """For a file the C reader accepted: the tensor table must equal the gguf package's, if it reads it."""
    from llmc.runtime.gguf_file import GGUFError, GGUFFile

    try:
        py = GGUFFile(result["path"])
    except GGUFError:
        return "python-rejects"
    expected = [[t.name, t.type_id, list(t.ne), t.offset, t.nbytes] for t in py.tensors.values()]
    assert result["tensors"] == expected, result["path"]
    return "same"


def test_random_corruption_never_crashes(built, tmp_path):
    """Mutated and truncated copies of a GGUFWriter file: each opens or fails with a message; none crashes,
    trips a sanitizer or hands out a tensor outside the file; accepted files agree with the gguf package."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    seed = tmp_path / "seed.gguf"
    small_writer_file(seed)
    data = seed.read_bytes()
    position = st.sampled_from(field_positions(seed)) | st.integers(0, len(data) - 1)
    edit = st.tuples(position, st.sampled_from(["byte", "flip", "u32", "u64"]), st.integers(0, 255))
    case = st.tuples(st.lists(edit, min_size=1, max_size=3), st.none() | st.integers(0, len(data)))
    batches = iter(range(10**6))
    outcomes = []

    # No shrinking: each step would start a child process. A failure names the file, left on disk.
    @settings(max_examples=16, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.lists(case, min_size=50, max_size=50))
    def check(batch):
        folder = tmp_path / f"batch{next(batches)}"
        folder.mkdir()
        paths = [write(folder, f"{i}.gguf", mutate(data, edits, cut)) for i, (edits, cut) in enumerate(batch)]
        for result in probe(built, paths):  # asserts: no crash, no sanitizer report, failures have messages
            outcomes.append(check_against_python_reader(result) if result["ok"] else "c-rejects")

    check()
    print({name: outcomes.count(name) for name in set(outcomes)})
