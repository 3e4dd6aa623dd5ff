"""llama.cpp as the oracle: the logits, greedy tokens and speed it gets on a GGUF file.

Runs llama.cpp through llama-cpp-python's low-level bindings (pinned to 0.3.36 in pyproject's `oracle`
extra; attention kernels changed during 2025-26, so results are comparable only within one version).
llama_cpp is imported lazily: without it every function raises OracleUnavailable, which tests turn into
a skip. llama.cpp's log output is switched off unless LLMC_ORACLE_LOG=1.

Run mode, every flag pinned here so a library upgrade cannot change it silently:
  - CPU only (n_gpu_layers=0), `n_threads` threads for both batches and single tokens;
  - flash attention OFF by default (the default of llama-cpp-python's `Llama(flash_attn=False)`;
    llama.cpp's own CLI defaults to `-fa auto`, which is ON for CPU). Non-FA: q and K in f16 for QK^T,
    softmax in f32, probabilities rounded to f16 before the product with V (docs/numerics.md §0);
  - K and V cache in F16; full-size SWA cache (masking alone implements the window);
  - no "extra buffer types" (use_extra_bufts=False, `--no-repack` in the CLI): on this machine ggml's
    AMX buffer type, chosen for Q4_0/Q4_1/Q8_0 weights, dies with SIGILL (`tilezero`, invalid opcode in
    the VM), and REPACK is disabled with it. Weights stay in their file layout and run on ggml's plain
    CPU kernels (vec_dot / llamafile sgemm);
  - OpenMP threads wait passively (OMP_WAIT_POLICY=PASSIVE unless already set; see _llama_cpp);
  - weights mmapped (the model is freed before each function returns), no rope/yarn overrides;
  - teacher forcing: all tokens go in one llama_decode with logits for every position
    (n_batch = n_ubatch = n_ctx >= len(tokens)), so one set of kernels computes all positions;
    or, with one_token_per_decode, one llama_decode per token, as llama.cpp runs while it generates.
    The two differ in summation order, not in what they compute: a batch of >= 2 tokens goes through
    llamafile's sgemm (ggml-cpu/llamafile/sgemm.cpp refuses n < 2) and tiled K-quant kernels, a single
    token through ggml's vec_dot kernels, one order per kernel (docs/numerics.md, "Summation orders").
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import statistics
import time
from collections.abc import Iterator, Sequence

import numpy as np

GGML_TYPE_F16 = 1

# Set on first use; holds the no-op log callback alive while llama.cpp keeps a pointer to it.
_log_callback = None


class OracleUnavailable(RuntimeError):
    """llama-cpp-python is not installed (pip install 'llmc[oracle]')."""


class OracleError(RuntimeError):
    """llama.cpp refused a file or failed to evaluate it."""


def _llama_cpp():
    global _log_callback
    # Sleep, don't spin, at OpenMP barriers: on our 2 shared cores with other jobs running, spinning made
    # 2-thread runs up to 10x slower (SmolLM2 decode 2 tok/s instead of 60). Only takes effect if
    # llama_cpp was not imported before; set OMP_WAIT_POLICY=ACTIVE to measure llama.cpp's default.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError as exc:
        raise OracleUnavailable(
            f"llama.cpp oracle unavailable: cannot import llama_cpp ({exc}); "
            "install it with pip install 'llama-cpp-python==0.3.36'") from None
    if _log_callback is None:
        if os.environ.get("LLMC_ORACLE_LOG") != "1":   # LLMC_ORACLE_LOG=1 keeps llama.cpp's log on stderr
            _log_callback = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
            llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
        else:
            _log_callback = False
        llama_cpp.llama_backend_init()
    return llama_cpp


def require() -> None:
    """Raise OracleUnavailable unless llama-cpp-python can be imported."""
    _llama_cpp()


class _Session:
    """One loaded model and context in the pinned run mode; feeds tokens at increasing positions."""

    def __init__(self, lib, model, ctx, n_ctx: int):
        self.lib, self.model, self.ctx, self.n_ctx = lib, model, ctx, n_ctx
        self.n_vocab = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(model))
        self.n_past = 0
        self.batch = lib.llama_batch_init(n_ctx, 0, 1)

    def check_tokens(self, tokens: Sequence[int]) -> list[int]:
        tokens = [int(t) for t in tokens]
        if not tokens:
            raise ValueError("no tokens")
        bad = [t for t in tokens if not 0 <= t < self.n_vocab]
        if bad:
            raise ValueError(f"token ids {bad[:5]} outside the vocabulary (n_vocab={self.n_vocab})")
        if self.n_past + len(tokens) > self.n_ctx:
            raise ValueError(f"{self.n_past} + {len(tokens)} tokens do not fit in n_ctx={self.n_ctx}")
        return tokens

    def decode(self, tokens: Sequence[int], all_logits: bool) -> np.ndarray | None:
        """One llama_decode of `tokens` after the ones already fed.

        Returns (len(tokens), n_vocab) float32 logits if all_logits, else the last position's (n_vocab,).
        """
        tokens = self.check_tokens(tokens)
        batch = self.batch
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = self.n_past + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = all_logits or i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        status = self.lib.llama_decode(self.ctx, batch)
        if status != 0:
            raise OracleError(f"llama_decode returned {status} at position {self.n_past}")
        self.n_past += len(tokens)
        if all_logits:
            ptr = self.lib.llama_get_logits(self.ctx)
            return np.ctypeslib.as_array(ptr, shape=(len(tokens), self.n_vocab)).copy()
        ptr = self.lib.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def clear(self) -> None:
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)
        self.n_past = 0


@contextlib.contextmanager
def _session(gguf_path: str | os.PathLike, n_ctx: int, n_threads: int,
             flash_attn: bool) -> Iterator[_Session]:
    lib = _llama_cpp()
    path = os.fspath(gguf_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such GGUF file")

    mparams = lib.llama_model_default_params()
    mparams.n_gpu_layers = 0
    mparams.use_extra_bufts = False
    mparams.load_mode = lib.LLAMA_LOAD_MODE_MMAP
    model = lib.llama_model_load_from_file(path.encode(), mparams)
    if not model:
        raise OracleError(f"{path}: llama.cpp could not load the model (set LLMC_ORACLE_LOG=1 to see why)")

    cparams = lib.llama_context_default_params()
    cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = n_ctx
    cparams.n_seq_max = 1
    cparams.n_threads = cparams.n_threads_batch = n_threads
    cparams.flash_attn_type = (lib.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn
                               else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED)
    cparams.type_k = cparams.type_v = GGML_TYPE_F16
    cparams.swa_full = True
    cparams.embeddings = False
    cparams.no_perf = True
    ctx = lib.llama_init_from_model(model, cparams)
    if not ctx:
        lib.llama_model_free(model)
        raise OracleError(f"{path}: llama.cpp could not create a context with n_ctx={n_ctx}")
    session = _Session(lib, model, ctx, n_ctx)
    try:
        yield session
    finally:
        lib.llama_batch_free(session.batch)
        lib.llama_free(ctx)
        lib.llama_model_free(model)


def _context_size(n_tokens: int, n_ctx: int | None) -> int:
    if n_ctx is None:
        n_ctx = max(64, -(-n_tokens // 64) * 64)
    if n_tokens > n_ctx:
        raise ValueError(f"{n_tokens} tokens do not fit in n_ctx={n_ctx}")
    return n_ctx


def llama_logits(gguf_path: str | os.PathLike, tokens: Sequence[int], n_ctx: int | None = None,
                 n_threads: int = 2, flash_attn: bool = False,
                 one_token_per_decode: bool = False) -> np.ndarray:
    """Teacher-forced logits: row i is llama.cpp's next-token logits after tokens[:i+1].

    Returns float32 (len(tokens), n_vocab). No BOS is added: the tokens go in exactly as given, at
    positions 0..len-1, in one decode, or in one decode each with one_token_per_decode.
    """
    with _session(gguf_path, _context_size(len(tokens), n_ctx), n_threads, flash_attn) as session:
        if one_token_per_decode:
            return np.stack([session.decode([token], all_logits=False) for token in tokens])
        return session.decode(tokens, all_logits=True)


def llama_generate_greedy(gguf_path: str | os.PathLike, tokens: Sequence[int], n: int,
                          n_threads: int = 2, flash_attn: bool = False) -> list[int]:
    """`n` tokens by argmax decoding after the prompt `tokens`: the prompt in one decode, then one token
    per decode, as a chat runs. Ties go to the lowest id (numpy argmax); EOS does not stop it."""
    with _session(gguf_path, _context_size(len(tokens) + n, None), n_threads, flash_attn) as session:
        logits = session.decode(tokens, all_logits=False)
        out: list[int] = []
        for _ in range(n):
            out.append(int(np.argmax(logits)))
            logits = session.decode(out[-1:], all_logits=False)
        return out


def llama_bench(gguf_path: str | os.PathLike, n_prompt: int = 128, n_gen: int = 64, repeats: int = 3,
                n_threads: int = 2, flash_attn: bool = False) -> dict[str, float]:
    """llama.cpp's speed on this machine in the pinned run mode: medians over `repeats` runs, in tokens/s.

    prefill_tok_s: one decode of `n_prompt` tokens into an empty cache (logits of the last one only).
    decode_tok_s: `n_gen` single-token decodes following that prompt.
    As in llama-bench, a warm-up run comes first and the tokens are fixed random ids, not sampled.
    """
    with _session(gguf_path, _context_size(n_prompt + n_gen, None), n_threads, flash_attn) as session:
        rng = np.random.default_rng(0)
        prompt = rng.integers(0, session.n_vocab, size=n_prompt).tolist()
        gen = rng.integers(0, session.n_vocab, size=n_gen).tolist()
        prefill, decode = [], []
        for _ in range(repeats + 1):
            session.clear()
            start = time.perf_counter()
            session.decode(prompt, all_logits=False)
            mid = time.perf_counter()
            for token in gen:
                session.decode([token], all_logits=False)
            end = time.perf_counter()
            prefill.append(n_prompt / (mid - start))
            decode.append(n_gen / (end - mid))
        return {"prefill_tok_s": statistics.median(prefill[1:]),
                "decode_tok_s": statistics.median(decode[1:])}
