"""The context a model is loaded with (n_ctx, per sequence): the caller's, else the file's context_length
capped at 4096 — refused where llama.cpp would compute a different model at that context.

Phi-3 128k files hold two sets of rope frequency divisors, rope_factors_short.weight and
rope_factors_long.weight. llama.cpp (src/llama-model.cpp get_rope_factors) takes the long ones when the
per-sequence context exceeds n_ctx_orig_yarn: `{arch}.rope.scaling.original_context_length`, else
`{arch}.context_length` (llama-model.cpp, llama-context.cpp). It rounds that context up to a multiple of
256 first (llama-context.cpp: n_ctx_seq = GGML_PAD(n_ctx_seq, 256)). An architecture that binds no weight
to the long factors computes the short-factor model only, so above that limit its logits would be silently
different from llama.cpp's: the load is refused instead, naming the limit and the key it comes from.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from llmc.ir.errors import BindError

DEFAULT_MAX_N_CTX = 4096            # the default n_ctx when the caller gives none: min(context_length, this)
LONG_ROPE_FACTORS = "rope_factors_long.weight"
LLAMA_CPP_CTX_ROUND = 256           # llama.cpp rounds n_ctx (and n_ctx per sequence) up to a multiple of this


def _round_up(n: int) -> int:
    return -(-n // LLAMA_CPP_CTX_ROUND) * LLAMA_CPP_CTX_ROUND


def context_size(arch: str, metadata: Mapping[str, Any], tensors: Collection[str], bound: Collection[str],
                 n_ctx: int | None, file: str, arch_file: str) -> int:
    """n_ctx for a model of `arch` from `file` (metadata, tensor names), whose architecture `arch_file` binds
    the GGUF tensors `bound` ("{arch}" in a name is the architecture)."""
    ctx_len = int(metadata.get(f"{arch}.context_length", 2048))
    bound = {name.replace("{arch}", arch) for name in bound}
    if LONG_ROPE_FACTORS not in tensors or LONG_ROPE_FACTORS in bound:
        return int(n_ctx or min(ctx_len, DEFAULT_MAX_N_CTX))
    key = f"{arch}.rope.scaling.original_context_length"
    limit, source = (int(metadata[key]), key) if key in metadata else (ctx_len, f"{arch}.context_length")
    largest = limit // LLAMA_CPP_CTX_ROUND * LLAMA_CPP_CTX_ROUND      # the largest n_ctx on the short factors
    if not n_ctx:
        n_ctx = min(ctx_len, DEFAULT_MAX_N_CTX, largest) or limit       # limit < 256: refused just below
    if _round_up(n_ctx) > limit:
        fix = f"load it with n_ctx <= {largest}" if largest else "llmc cannot load it"
        raise BindError(f"{file}: n_ctx = {n_ctx} is above {source} = {limit}, where llama.cpp ropes with "
                        f"{LONG_ROPE_FACTORS} (after rounding the context up to a multiple of "
                        f"{LLAMA_CPP_CTX_ROUND}); {arch_file} binds only the short factors, so {fix}")
    return int(n_ctx)
