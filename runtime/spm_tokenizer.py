"""SentencePiece vocabularies (tokenizer.ggml.model = "llama": Llama 1/2, Mistral, TinyLlama, Gemma), with
llama.cpp's token ids.

llama.cpp's SPM tokenizer (src/llama-vocab.cpp: llama_vocab::impl::tokenize, llm_tokenizer_spm_session,
token_to_piece, detokenize), step by step:

1. Special tokens are split out of the text as for byte-level BPE (Tokenizer._partition: CONTROL and
   UNKNOWN tokens when parse_special, USER_DEFINED always; Gemma's "\\n\\n" or "<h1>" are USER_DEFINED).
2. Each raw fragment gets one leading space if `tokenizer.ggml.add_space_prefix` (default true) and it is
   the first fragment or follows a special token; then every space becomes U+2581 '▁'.
3. The fragment is cut into UTF-8 characters. Every adjacent pair whose concatenation is a token (of any
   type) is queued with that token's score; the best score is merged first, the leftmost on a tie; a
   queued pair is dropped when either side has changed since; new pairs with the neighbours are queued.
   No pre-tokenizer: the whole fragment is one sequence.
4. A final symbol that is not a token becomes its UTF-8 bytes as `<0xNN>` byte tokens (byte fallback).

Decoding: NORMAL tokens are their text with '▁' back to ' ', BYTE tokens the byte they name, CONTROL and
UNKNOWN tokens their text only when `special`, USER_DEFINED tokens their text, UNUSED tokens nothing.
A whole sequence decodes with its first leading space removed when add_space_prefix is set (unless it
starts with BOS), as llama_detokenize does; streaming (token_piece, StreamDecoder) keeps every space.

Why not HF tokenizers: its SentencePiece models are BPE with merge ranks or unigram lattices; llama.cpp's
merges by token score over all pairs, and GGUF SPM files carry scores, not merges. The loop below is
that algorithm in a few lines, built from the arrays in bulk (a 262k-token vocabulary in ~0.1 s).
"""
from __future__ import annotations

import heapq
import itertools
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .tokenizer import TYPE_BYTE, TYPE_NORMAL, Tokenizer, TokenizerError, _check_bos_eos, _require

SPACE = "\u2581"                        # '▁', SentencePiece's visible space


class SpmTokenizer(Tokenizer):
    """A SentencePiece vocabulary (token texts with scores and types, no merges), llama.cpp's ids.

    Shares special-token handling (partition, EOG detection, control-token hiding, streaming) with the
    byte-level BPE Tokenizer; encoding and the pieces of NORMAL and BYTE tokens are SentencePiece's."""

    def __init__(self, tokens: list[str], token_types: Sequence[int], scores: Sequence[float],
                 bos_id: int | None = None, eos_id: int | None = None, add_bos: bool = True,
                 add_eos: bool = False, add_space_prefix: bool = True,
                 special_ids: dict[str, int] | None = None, model_name: str = ""):
        n = len(tokens)
        for name, values in (("token_type", token_types), ("scores", scores)):
            if len(values) != n:
                raise TokenizerError(f"tokenizer.ggml.{name} has {len(values)} entries but "
                                     f"tokenizer.ggml.tokens has {n}")
        _check_bos_eos(n, bos_id, eos_id, add_bos, add_eos)
        self.pre = "spm"
        self.n_vocab = n
        self.bos_id, self.eos_id = bos_id, eos_id
        self.add_bos, self.add_eos = add_bos, add_eos
        self.add_space_prefix = add_space_prefix
        # llama.cpp names an empty token "[EMPTY_<id>]" so that every text is unique to look up.
        if not all(tokens):
            tokens = [t or f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
        types = np.asarray(token_types, dtype=np.int64)
        self._ids = dict(zip(tokens, range(n)))                   # a repeated text: its last id, as llama.cpp
        self._scores = np.asarray(scores, dtype=np.float32).tolist()   # float32 values, compared as llama.cpp
        self._user_defined, self._control, self.eog_ids = self._special_attributes(
            tokens, types, self._ids, special_ids or {})
        self._special_texts = {i: tokens[i] for i in self._user_defined | self._control}
        self._specials = sorted(self._special_texts,
                                key=lambda i: (-len(self._special_texts[i].encode("utf-8")), i))
        self._rstrip = self._rstrip_ids(model_name, self._ids)
        self._byte_ids = self._byte_tokens(types)
        self._blob, self._offsets = self._spm_pieces(tokens, types)

    @classmethod
    def from_metadata(cls, md: dict[str, Any]) -> SpmTokenizer:
        """From GGUF metadata, with llama.cpp's SPM defaults: BOS 1, EOS 2, add BOS, add a space prefix."""
        tokens = _require(md, "tokenizer.ggml.tokens")
        n = len(tokens)
        special_ids = {name: md[f"tokenizer.ggml.{name}_token_id"]
                       for name in ("eot", "eom", "fim_pad", "fim_rep", "fim_sep")
                       if f"tokenizer.ggml.{name}_token_id" in md}

        def special(name: str, default: int) -> int | None:
            # A default outside the vocabulary is disabled; a key outside it keeps the default (llama.cpp).
            tid = default if default < n else None
            value = md.get(f"tokenizer.ggml.{name}_token_id")
            return value if value is not None and 0 <= value < n else tid

        return cls(tokens, md.get("tokenizer.ggml.token_type", [TYPE_NORMAL] * n),
                   md.get("tokenizer.ggml.scores", [0.0] * n),
                   bos_id=special("bos", 1), eos_id=special("eos", 2),
                   add_bos=bool(md.get("tokenizer.ggml.add_bos_token", True)),
                   add_eos=bool(md.get("tokenizer.ggml.add_eos_token", False)),
                   add_space_prefix=bool(md.get("tokenizer.ggml.add_space_prefix", True)),
                   special_ids=special_ids, model_name=str(md.get("general.name", "")))

    def token_id(self, text: str) -> int | None:
        return self._ids.get(text)

    # --- encode -------------------------------------------------------------------------------------

    def encode(self, text: str, add_special: bool = True, parse_special: bool = True) -> list[int]:
        ids: list[int] = []
        if add_special and self.add_bos:
            ids.append(self.bos_id)
        prev_special = True                         # the first fragment is prefixed like one after a special
        for fragment in self._partition(text, parse_special):
            if isinstance(fragment, int):
                ids.append(fragment)
                prev_special = True
                continue
            if self.add_space_prefix and prev_special:
                fragment = " " + fragment
            ids.extend(self._encode_fragment(fragment.replace(" ", SPACE)))
            prev_special = False
        if add_special and self.add_eos:
            ids.append(self.eos_id)
        return ids

    def _encode_fragment(self, text: str) -> list[int]:
        """llm_tokenizer_spm_session::tokenize on one escaped fragment: best-score pair merges."""
        n = len(text)
        start = list(range(n))                      # symbol i covers text[start[i]:start[i] + size[i]]
        size = [1] * n                              # 0 once merged into its left neighbour
        nxt, prv = list(range(1, n + 1)), list(range(-1, n - 1))      # linked list; n and -1 end it
        ids, scores = self._ids, self._scores
        queue: list[tuple[float, int, int, int]] = []                 # (-score, left, right, merged size)

        def add_pair(left: int, right: int) -> None:
            if left < 0 or right >= n:
                return
            tid = ids.get(text[start[left]:start[right] + size[right]])
            if tid is not None:
                heapq.heappush(queue, (-scores[tid], left, right, size[left] + size[right]))

        for i in range(n - 1):
            add_pair(i, i + 1)
        while queue:
            _, left, right, merged = heapq.heappop(queue)
            if size[left] == 0 or size[right] == 0 or size[left] + size[right] != merged:
                continue                            # stale: one side merged with another neighbour first
            size[left], size[right] = merged, 0
            nxt[left] = nxt[right]
            if nxt[left] < n:
                prv[nxt[left]] = left
            add_pair(prv[left], left)
            add_pair(left, nxt[left])
        out: list[int] = []
        i = 0
        while i < n:
            piece = text[start[i]:start[i] + size[i]]
            tid = ids.get(piece)
            if tid is not None:
                out.append(tid)
            else:
                out.extend(self._byte_fallback(piece))
            i = nxt[i]
        return out

    def _byte_fallback(self, piece: str) -> list[int]:
        out = []
        for b in piece.encode("utf-8"):
            tid = self._byte_ids[b]
            if tid is None:
                raise TokenizerError(f"{piece!r} is not in the vocabulary, which has no byte token <0x{b:02X}> "
                                     f"to fall back to")
            out.append(tid)
        return out

    # --- decode -------------------------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int], special: bool = True) -> bytes:
        """The bytes of a whole sequence, as llama_detokenize gives them (without remove_special): the
        first token loses one leading space when add_space_prefix, unless the sequence starts with BOS."""
        pieces = [self.token_piece(i, special) for i in ids]
        if self.add_space_prefix and pieces and pieces[0].startswith(b" "):
            pieces[0] = pieces[0][1:]
        return b"".join(pieces)

    # --- construction helpers -----------------------------------------------------------------------

    def _byte_tokens(self, types: np.ndarray) -> list[int | None]:
        """byte -> the id of its `<0xNN>` token, else (ASCII only) of the one-character token; None if
        neither exists (llama_vocab::byte_to_token)."""
        out: list[int | None] = []
        for b in range(256):
            tid = self._ids.get(f"<0x{b:02X}>")
            if tid is None and b < 0x80:
                tid = self._ids.get(chr(b))
            out.append(tid)
        return out

    def _spm_pieces(self, tokens: list[str], types: np.ndarray) -> tuple[bytes, array]:
        """Every token's bytes back to back, and n_vocab + 1 offsets into them.

        In bulk: the texts joined with NUL, '▁' replaced, encoded once and viewed as Latin-1 so that each
        character is one byte; split again at NUL. BYTE tokens become the byte their text names; UNUSED and
        undefined types are empty; CONTROL, UNKNOWN and USER_DEFINED keep their text."""
        keep = (types == TYPE_NORMAL).copy()
        special = self._user_defined | self._control
        keep[list(special)] = True
        parts = [t if k else "" for t, k in zip(tokens, keep.tolist())]
        joined = "\0".join(parts)
        if joined.count("\0") == len(parts) - 1:
            latin = joined.replace(SPACE, " ").encode("utf-8").decode("latin-1").split("\0")
            for i in special:                          # special tokens keep '▁' in their text
                latin[i] = tokens[i].encode("utf-8").decode("latin-1")
            parts = latin
        else:                                          # a token holds NUL: one by one
            parts = [p.encode("utf-8").decode("latin-1") for p in parts]
            for i in np.flatnonzero(types == TYPE_NORMAL).tolist():
                if i not in special:
                    parts[i] = tokens[i].replace(SPACE, " ").encode("utf-8").decode("latin-1")
        for i in np.flatnonzero(types == TYPE_BYTE).tolist():
            if i not in special:
                parts[i] = chr(_byte_value(tokens[i], i))
        offsets = array("q", [0])
        offsets.extend(itertools.accumulate(map(len, parts)))
        return "".join(parts).encode("latin-1"), offsets


def _byte_value(text: str, tid: int) -> int:
    """The byte a BYTE token `<0xNN>` names."""
    if len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
        try:
            return int(text[3:5], 16)
        except ValueError:
            pass
    raise TokenizerError(f"tokenizer.ggml.tokens[{tid}] = {text!r} has type BYTE but is not <0xNN>")
