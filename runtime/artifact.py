"""Load a compiled artifact (manifest + shared library) through cffi and run it as a Model engine.

The manifest is the contract: this module never imports the compiler or codegen. Hyperparameters are
evaluated here from the GGUF metadata with the formulas the manifest carries; the C side maps the file
and checks every tensor it binds.
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass

import numpy as np

from llmc.ir.bind import bind_params
from llmc.ir.errors import BindError, LlmcError
from llmc.ir.graph import param_from_json

from .context_size import context_size
from .gguf_file import GGUF_CDEF, GGUFFile, GGUFHeader, read_header

FORMAT_VERSION = 1
_CDEF = GGUF_CDEF + """
typedef struct llmc_model llmc_model;
llmc_model *llmc_model_load(const char *gguf_path, const double *params, int n_params, int n_ctx, int n_seq,
                            int n_batch, int n_threads, char *err, size_t err_len);
int llmc_forward(llmc_model *m, const int32_t *tokens, int n_tokens, int pos, float *logits, int all_logits,
                 char *err, size_t err_len);
int llmc_forward_batch(llmc_model *m, const int32_t *tokens, const int32_t *in_seq, const int32_t *in_pos,
                       int n_tokens, const int32_t *out_rows, int n_out, float *logits, char *err, size_t err_len);
void llmc_model_free(llmc_model *m);
int llmc_model_n_params(void);
int llmc_model_n_vocab(const llmc_model *m);
size_t llmc_model_arena_bytes(const llmc_model *m);
const char *llmc_model_placement(const llmc_model *m);
"""
_ffi = None


def _get_ffi():
    global _ffi
    if _ffi is None:
        import cffi
        _ffi = cffi.FFI()
        _ffi.cdef(_CDEF)
    return _ffi


_MACHINE_ALIASES = {"arm64": "aarch64", "amd64": "x86_64"}


def check_machine(artifact_dir: str, manifest: dict) -> None:
    """Refuse an artifact built for another machine (llmc compile --cross) before dlopen fails on it."""
    built = manifest.get("build", {}).get("machine")
    here = platform.machine().lower()
    if built and _MACHINE_ALIASES.get(built, built) != _MACHINE_ALIASES.get(here, here):
        raise LlmcError(f"{artifact_dir} was built for {built} (--cross {manifest['build'].get('cross')}) and "
                        f"this machine is {here}: run it on an {built} machine (bin/llmc-run, or llmc.load "
                        f"there), or compile it again here without --cross")


def _library(artifact_dir: str, manifest: dict):
    """The artifact's shared library (dlopen of the same path again returns the same handle)."""
    check_machine(artifact_dir, manifest)
    return _get_ffi().dlopen(os.path.join(os.path.abspath(artifact_dir), manifest["library"]))


def read_gguf(artifact_dir: str, gguf_path: str) -> GGUFHeader:
    """The file's metadata and tensor table, read by the artifact's own C reader."""
    return read_header(gguf_path, _get_ffi(), _library(artifact_dir, read_manifest(artifact_dir)))


def read_manifest(artifact_dir: str) -> dict:
    path = os.path.join(artifact_dir, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except OSError:
        raise LlmcError(f"{artifact_dir}: not an llmc artifact (no manifest.json)") from None
    except json.JSONDecodeError as exc:
        raise LlmcError(f"{path}: corrupt manifest: {exc}") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise LlmcError(f"{path}: manifest format {manifest.get('format_version')}, this llmc reads {FORMAT_VERSION}")
    return manifest


@dataclass(frozen=True)
class LoadPlacement:
    """Where the load put a node that the compile left to the file (compiled without --gguf, its device
    kernel taking only some weight types): how many layers (1 outside the layer block) on each side."""
    node: str               # "matmul %22 attn_q"
    device: str
    on_device: int
    fallback: str
    on_fallback: int
    fallback_types: str     # the file's types that went to the fallback, "Q8_0/Q6_K"
    reason: str             # why those types do not run on the device

    def __str__(self) -> str:
        where = [f"{self.device} x{self.on_device}"] if self.on_device else []
        if self.on_fallback:
            where.append(f"{self.fallback} x{self.on_fallback} ({self.fallback_types}: {self.reason})")
        return f"{self.node}: {'; '.join(where)}"


def _placement(notes: str) -> list[LoadPlacement]:
    out = []
    for line in notes.splitlines():
        what, device, there, fallback, elsewhere, types, reason = line.split("\t", 6)
        out.append(LoadPlacement(what, device, int(there), fallback, int(elsewhere), types, reason))
    return out


class CEngine:
    """A compiled model in a shared library; n_seq sequences, each with its own KV cache inside the C model.
    forward() continues sequence 0; forward_batch() runs tokens of several sequences in one call."""

    def __init__(self, artifact_dir: str, gguf: GGUFHeader | GGUFFile, n_ctx: int | None = None, n_batch: int = 64,
                 n_threads: int | None = None, n_seq: int = 1):
        manifest = read_manifest(artifact_dir)
        self.target = manifest["target"]
        if gguf.arch != manifest["arch"]:
            raise BindError(f"{gguf.path} holds a {gguf.arch!r} model but the artifact was compiled for "
                            f"{manifest['arch']!r}")
        params = bind_params([param_from_json(p) for p in manifest["params"]], manifest["arch"], gguf.metadata,
                             gguf.tensors, gguf.path)
        spec = manifest.get("specialized")
        if spec:
            for name, value in spec["params"].items():
                if params.get(name) != value:
                    raise BindError(f"this artifact was specialized for {spec['file']} ({name} = {value}); "
                                    f"{gguf.path} has {name} = {params.get(name)}")
        values = [float(v) if isinstance(v, (int, float)) else float("nan") for v in params.values()]
        bound = [name for w in manifest["weights"] for name in (w["gguf"], w.get("fallback"), w.get("chosen_at_load"))
                 if name]
        self.n_ctx = context_size(manifest["arch"], gguf.metadata, gguf.tensors, bound, n_ctx, gguf.path,
                                  manifest["source"])
        ffi = _get_ffi()
        self._ffi = ffi
        self._lib = _library(artifact_dir, manifest)
        err = ffi.new("char[]", 1024)
        threads = n_threads or min(os.cpu_count() or 1, 8)
        model = self._lib.llmc_model_load(gguf.path.encode(), ffi.new("double[]", values), len(values),
                                          self.n_ctx, n_seq, n_batch, threads, err, 1024)
        if model == ffi.NULL:
            raise BindError(ffi.string(err).decode(errors="replace"))
        self._model = ffi.gc(model, self._lib.llmc_model_free)
        self.n_vocab = int(self._lib.llmc_model_n_vocab(model))
        self.n_batch = min(n_batch, self.n_ctx)
        self.n_seq = n_seq
        self.arena_bytes = int(self._lib.llmc_model_arena_bytes(model))
        self.placement = _placement(ffi.string(self._lib.llmc_model_placement(model)).decode())
        self._err = err
        self.n_past = 0

    def reset(self) -> None:
        self.n_past = 0

    def forward(self, tokens: np.ndarray, all_logits: bool) -> np.ndarray:
        tokens = np.ascontiguousarray(tokens, np.int32)
        out = []
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            rows = len(chunk) if all_logits else 1
            logits = np.empty((rows, self.n_vocab), np.float32)
            ok = self._lib.llmc_forward(self._model, self._ffi.cast("int32_t *", chunk.ctypes.data), len(chunk),
                                        self.n_past, self._ffi.cast("float *", logits.ctypes.data),
                                        1 if all_logits else 0, self._err, 1024)
            if not ok:
                raise LlmcError(self._ffi.string(self._err).decode(errors="replace"))
            self.n_past += len(chunk)
            out.append(logits)
        return np.concatenate(out) if all_logits else out[-1]

    def forward_batch(self, tokens: np.ndarray, seq: np.ndarray, positions: np.ndarray,
                      out_rows: np.ndarray) -> np.ndarray:
        """One batched step: token t of sequence seq[t] at position positions[t] (all (T,), T <= n_batch);
        the logits (len(out_rows), n_vocab) of the rows out_rows (ascending)."""
        arrays = [np.ascontiguousarray(a, np.int32) for a in (tokens, seq, positions, out_rows)]
        logits = np.empty((len(arrays[3]), self.n_vocab), np.float32)
        ptr = [self._ffi.cast("int32_t *", a.ctypes.data) for a in arrays]
        ok = self._lib.llmc_forward_batch(self._model, ptr[0], ptr[1], ptr[2], len(arrays[0]), ptr[3],
                                          len(arrays[3]), self._ffi.cast("float *", logits.ctypes.data),
                                          self._err, 1024)
        if not ok:
            raise LlmcError(self._ffi.string(self._err).decode(errors="replace"))
        return logits


def load_engine(artifact_dir: str, gguf: GGUFHeader | GGUFFile, n_ctx: int | None = None, **options) -> CEngine:
    return CEngine(artifact_dir, gguf, n_ctx=n_ctx, **options)
