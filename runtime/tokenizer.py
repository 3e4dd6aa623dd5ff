"""Byte-level BPE tokenizer built from GGUF metadata, matching llama.cpp's token ids.

The pipeline is llama.cpp's (src/llama-vocab.cpp, tokenize and tokenizer_st_partition):

1. Split the text on special tokens (longest token text first), when parse_special. Tokens that llama.cpp
   marks USER_DEFINED are split out even when parse_special is False. A token marked right-stripping
   (Phi-3's, see `_rstrip_ids`) swallows the whitespace that follows it.
2. Pre-tokenize each remaining fragment with the pre-type's regexes, applied in sequence: every regex
   further splits the pieces of the previous one, and spans it does not match stay pieces.
3. Map the bytes to GPT-2's printable unicode and apply BPE by lowest merge rank.

Step 2 runs in HF `tokenizers` (a Split pre-tokenizer per regex, then ByteLevel); step 3 is `_BPE`, which
merges the way HF's BPE model does but is built from the GGUF arrays in milliseconds (HF's model takes
about a second to build for a 262k-token vocabulary). The regexes (runtime/pre_tokenizer.py) are llama.cpp's
own spellings, e.g. its rewrite of the gpt-4o case classes, so non-ASCII mixed-case words split the way
llama.cpp splits them.

Which tokens end generation (`eog_ids`) and which are special also follow llama.cpp's rules, including
the text-based detection it applies to every vocabulary (see `_special_attributes`).
"""
from __future__ import annotations

import codecs
import functools
import heapq
import itertools
import operator
import re
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from llmc.ir.errors import LlmcError

from .pre_tokenizer import PRE_TOKENIZERS, pre_tokenizer

# tokenizer.ggml.token_type values (llama_token_type)
TYPE_NORMAL = 1
TYPE_UNKNOWN = 2
TYPE_CONTROL = 3
TYPE_USER_DEFINED = 4
TYPE_UNUSED = 5
TYPE_BYTE = 6

# Token texts that llama.cpp treats as end-of-generation in every vocabulary (llama-vocab.cpp, load()).
_EOG_TEXTS = frozenset({
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~[",
})
# FIM pad/repo/separator tokens: llama.cpp detects them by text and makes them EOG as well.
_FIM_EOG_TEXTS = {
    "fim_pad": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "fim_rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "fim_sep": ("<|file_sep|>",),
}
# gpt-oss: llama.cpp always renders these, and treats them as USER_DEFINED.
_ALWAYS_RENDERED = ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>")
# A file whose general.name holds one of these (any case) gets Phi-3's right-stripping special tokens: all of
# them, and </s>, except these three (llama.cpp, src/llama-vocab.cpp, token attributes by model name).
_PHI3_NAMES = ("phi-3", "phi3")
_PHI3_NO_RSTRIP = ("<unk>", "<s>", "<|endoftext|>")
_C_SPACE = " \t\n\v\f\r"            # C's isspace(), what llama.cpp strips


class TokenizerError(LlmcError):
    """The GGUF tokenizer metadata is missing, inconsistent or of a kind llmc does not support."""


@functools.cache
def _unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: 'Ġ' -> 0x20, 'Ċ' -> 0x0a, ..."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


@functools.cache
def _byte_lookup() -> np.ndarray:
    """Code point -> byte, for code points below U+0144: the byte-map characters give their bytes, the
    other Latin-1 characters themselves. A whole vocabulary is byte-decoded with one numpy lookup."""
    table = np.arange(0x144, dtype=np.uint32)
    for ch, b in _unicode_to_byte().items():
        table[ord(ch)] = b
    return table.astype(np.uint8)


# Characters outside the byte map whose UTF-8 is not their Latin-1 byte: U+0080-U+00A0, U+00AD and
# everything above the map's last character U+0143. A NORMAL token holding one (a malformed vocabulary)
# takes the slow path, which keeps the character's own UTF-8 encoding.
_OFF_MAP = re.compile("[\u0080-\u00a0\u00ad\u0144-\U0010ffff]")


def _byte_decode(text: str) -> bytes:
    """The bytes a NORMAL token stands for. A character outside the byte map (malformed vocab) keeps its
    own UTF-8 encoding."""
    table = _unicode_to_byte()
    out = bytearray()
    for ch in text:
        b = table.get(ch)
        if b is None:
            out += ch.encode("utf-8")
        else:
            out.append(b)
    return bytes(out)


def _require(md: dict[str, Any], key: str) -> Any:
    if key not in md:
        raise TokenizerError(f"GGUF metadata has no {key!r}")
    return md[key]


def _check_bos_eos(n_vocab: int, bos_id: int | None, eos_id: int | None, add_bos: bool, add_eos: bool) -> None:
    """BOS/EOS ids lie inside the vocabulary, and a file that asks to add one names it."""
    for name, tid in (("bos", bos_id), ("eos", eos_id)):
        if tid is not None and not 0 <= tid < n_vocab:
            raise TokenizerError(f"tokenizer.ggml.{name}_token_id = {tid} is outside the vocabulary "
                                 f"(n_vocab = {n_vocab})")
    if add_bos and bos_id is None:
        raise TokenizerError("tokenizer.ggml.add_bos_token is true but there is no bos_token_id")
    if add_eos and eos_id is None:
        raise TokenizerError("tokenizer.ggml.add_eos_token is true but there is no eos_token_id")


class Tokenizer:
    """A byte-level BPE tokenizer (tokenizer.ggml.model = "gpt2") that reproduces llama.cpp's ids.

    Built from the vocabulary in bulk (dicts built by zip, numpy masks and one numpy lookup; no per-token
    Python code on a well-formed vocabulary). It keeps the BPE's two dicts (token text -> id, merge -> rank)
    and every token's bytes in one `bytes` blob with an offset table, not a bytes object per token."""

    def __init__(self, tokens: list[str], token_types: Sequence[int], merges: list[str], pre: str,
                 bos_id: int | None = None, eos_id: int | None = None, add_bos: bool = False,
                 add_eos: bool = False, special_ids: dict[str, int] | None = None, model_name: str = ""):
        if pre not in PRE_TOKENIZERS:
            raise TokenizerError(f"tokenizer.ggml.pre = {pre!r} is not supported; "
                                 f"supported: {', '.join(sorted(PRE_TOKENIZERS))}")
        if len(token_types) != len(tokens):
            raise TokenizerError(f"tokenizer.ggml.token_type has {len(token_types)} entries but "
                                 f"tokenizer.ggml.tokens has {len(tokens)}")
        _check_bos_eos(len(tokens), bos_id, eos_id, add_bos, add_eos)
        self.pre = pre
        self.n_vocab = len(tokens)
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.add_bos = add_bos
        self.add_eos = add_eos
        types = np.asarray(token_types, dtype=np.int64)
        by_text = dict(zip(tokens, range(len(tokens))))            # a repeated text: its last id
        # The BPE's vocabulary maps a repeated text to its first id instead; without repeats they agree.
        vocab = by_text if len(by_text) == len(tokens) else dict(zip(reversed(tokens), reversed(range(len(tokens)))))
        self._user_defined, self._control, self.eog_ids = self._special_attributes(
            tokens, types, by_text, special_ids or {})
        # Special-token partition order: longest text first (ties by id), as llama.cpp's cache.
        self._special_texts = {i: tokens[i] for i in self._user_defined | self._control if tokens[i]}
        self._specials = sorted(self._special_texts,
                                key=lambda i: (-len(self._special_texts[i].encode("utf-8")), i))
        self._rstrip = self._rstrip_ids(model_name, by_text)
        self._blob, self._offsets = self._pieces(tokens, types)
        self._bpe = _BPE(vocab, merges)
        self._pre_tokenizer = pre_tokenizer(pre)

    @classmethod
    def from_metadata(cls, md: dict[str, Any]) -> Tokenizer:
        """Build from a GGUF metadata dict (GGUFFile(path).metadata or read_header(...).metadata). A
        SentencePiece vocabulary (model "llama") gives a runtime/spm_tokenizer.py SpmTokenizer."""
        model = _require(md, "tokenizer.ggml.model")
        if model == "llama":
            from .spm_tokenizer import SpmTokenizer
            return SpmTokenizer.from_metadata(md)
        if model != "gpt2":
            raise TokenizerError(f"tokenizer.ggml.model = {model!r} is not supported; llmc supports "
                                 f"byte-level BPE ('gpt2') and SentencePiece ('llama')")
        pre = md.get("tokenizer.ggml.pre", "default")
        if pre not in PRE_TOKENIZERS:
            raise TokenizerError(f"tokenizer.ggml.pre = {pre!r} is not supported; "
                                 f"supported: {', '.join(sorted(PRE_TOKENIZERS))}")
        tokens = _require(md, "tokenizer.ggml.tokens")
        types = md.get("tokenizer.ggml.token_type", [TYPE_NORMAL] * len(tokens))
        special_ids = {name: md[f"tokenizer.ggml.{name}_token_id"]
                       for name in ("eot", "eom", "fim_pad", "fim_rep", "fim_sep")
                       if f"tokenizer.ggml.{name}_token_id" in md}
        return cls(tokens, types, _require(md, "tokenizer.ggml.merges"), pre,
                   bos_id=md.get("tokenizer.ggml.bos_token_id"), eos_id=md.get("tokenizer.ggml.eos_token_id"),
                   add_bos=bool(md.get("tokenizer.ggml.add_bos_token", False)),
                   add_eos=bool(md.get("tokenizer.ggml.add_eos_token", False)), special_ids=special_ids,
                   model_name=str(md.get("general.name", "")))

    def token_id(self, text: str) -> int | None:
        """The id of a token text (the first, if the vocabulary repeats it); None if absent."""
        return self._bpe.vocab.get(text)

    # --- encode -------------------------------------------------------------------------------------

    def encode(self, text: str, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """Token ids of `text`. add_special adds BOS/EOS only where the GGUF asks for them."""
        ids: list[int] = []
        if add_special and self.add_bos:
            ids.append(self.bos_id)
        for fragment in self._partition(text, parse_special):
            if isinstance(fragment, int):
                ids.append(fragment)
            else:
                for piece, _ in self._pre_tokenizer.pre_tokenize_str(fragment):
                    ids.extend(self._bpe.encode(piece))
        if add_special and self.add_eos:
            ids.append(self.eos_id)
        return ids

    def _partition(self, text: str, parse_special: bool) -> list[str | int]:
        """Split text into raw fragments (str) and special token ids (int), like tokenizer_st_partition."""
        fragments: list[str | int] = [text] if text else []
        for tid in self._specials:
            if not parse_special and tid not in self._user_defined:
                continue
            needle = self._special_texts[tid]
            if needle not in text:
                continue
            split: list[str | int] = []
            for fragment in fragments:
                if isinstance(fragment, int) or needle not in fragment:
                    split.append(fragment)
                    continue
                parts = fragment.split(needle)
                for k, part in enumerate(parts):
                    if k:
                        split.append(tid)
                        if tid in self._rstrip:
                            part = part.lstrip(_C_SPACE)
                    if part:
                        split.append(part)
            fragments = split
        return fragments

    # --- decode -------------------------------------------------------------------------------------

    def token_piece(self, token_id: int, special: bool = True) -> bytes:
        """The bytes token_id stands for. Control tokens render as their text only when `special`."""
        if not special and token_id in self._control:
            return b""
        return self._blob[self._offsets[token_id]:self._offsets[token_id + 1]]

    def decode_bytes(self, ids: Iterable[int], special: bool = True) -> bytes:
        return b"".join(self.token_piece(i, special) for i in ids)

    def decode(self, ids: Iterable[int], special: bool = True) -> str:
        """Text of ids; invalid UTF-8 (a character cut between tokens) becomes U+FFFD."""
        return self.decode_bytes(ids, special).decode("utf-8", errors="replace")

    def stream_decoder(self, special: bool = True) -> StreamDecoder:
        return StreamDecoder(self, special)

    # --- construction helpers -----------------------------------------------------------------------

    def _special_attributes(self, tokens: list[str], types: np.ndarray, by_text: dict[str, int],
                            special_ids: dict[str, int]):
        """(user_defined ids, control ids, eog ids) after llama.cpp's text-based fix-ups.

        llama.cpp makes EOG: eos, eot, eom, FIM pad/repo/sep and every token whose text is in _EOG_TEXTS
        (those become CONTROL if they were not). For o200k_harmony, when <|return|> and <|call|> are EOG,
        <|end|> is taken out of EOG and becomes USER_DEFINED; <|channel|> and friends are always
        USER_DEFINED.
        """
        n = len(tokens)
        control = set(np.flatnonzero((types == TYPE_CONTROL) | (types == TYPE_UNKNOWN)).tolist())
        user_defined = set(np.flatnonzero(types == TYPE_USER_DEFINED).tolist())
        eog = {by_text[t] for t in _EOG_TEXTS if t in by_text}
        for name, texts in _FIM_EOG_TEXTS.items():
            tid = special_ids.get(name)
            if tid is None:
                tid = next((by_text[t] for t in texts if t in by_text), None)
            if tid is not None:
                eog.add(tid)
        for tid in (self.eos_id, special_ids.get("eot"), special_ids.get("eom")):
            if tid is not None and 0 <= tid < n:
                eog.add(tid)
        eog = {i for i in eog if 0 <= i < n}
        control |= {i for i in eog if i not in user_defined}
        for text in _ALWAYS_RENDERED:
            if text in by_text:
                control.discard(by_text[text])
                user_defined.add(by_text[text])
        eog_texts = {tokens[i] for i in eog}
        has_call = "<|call|>" in eog_texts or "<|calls|>" in eog_texts
        if "<|end|>" in eog_texts and has_call and ("<|return|>" in eog_texts or "<|flush|>" in eog_texts):
            end = by_text["<|end|>"]
            eog.discard(end)
            control.discard(end)
            user_defined.add(end)
        user_defined -= control
        return user_defined, control, eog

    def _rstrip_ids(self, model_name: str, by_text: dict[str, int]) -> frozenset[int]:
        """The special tokens that drop the whitespace after them when the text is split (llama.cpp's
        LLAMA_TOKEN_ATTR_RSTRIP). Only Phi-3 files, known by name, have them: every special token and </s>,
        but not <unk>, <s> and <|endoftext|> (llama.cpp refuses a Phi-3 vocabulary lacking one of the four;
        we take the ones present)."""
        if not any(name in model_name.lower() for name in _PHI3_NAMES):
            return frozenset()
        rstrip = set(self._special_texts) | ({by_text["</s>"]} if "</s>" in by_text else set())
        return frozenset(rstrip - {by_text[t] for t in _PHI3_NO_RSTRIP if t in by_text})

    def _pieces(self, tokens: list[str], types: np.ndarray) -> tuple[bytes, array]:
        """Every token's bytes back to back, and n_vocab + 1 offsets into them. NORMAL tokens are
        byte-decoded, special ones are their UTF-8 text, the rest (BYTE, UNUSED) are empty.

        Each token becomes a string of characters below U+0144, one per byte: byte-map characters as they
        are, anything else already as Latin-1 characters of its bytes. Joined, one numpy lookup over the
        code points makes the blob."""
        special = self._user_defined | self._control
        parts = list(tokens)
        for i in np.flatnonzero(types != TYPE_NORMAL).tolist() + list(special):
            parts[i] = ""
        if _OFF_MAP.search("".join(parts)):
            for i, part in enumerate(parts):
                if _OFF_MAP.search(part):
                    parts[i] = _byte_decode(part).decode("latin-1")
        for i in special:
            parts[i] = tokens[i].encode("utf-8").decode("latin-1")
        offsets = array("q", [0])
        offsets.extend(itertools.accumulate(map(len, parts)))
        code_points = np.frombuffer("".join(parts).encode("utf-32-le"), np.uint32)
        return _byte_lookup()[code_points].tobytes(), offsets


class _BPE:
    """Byte-level BPE over one pre-tokenized piece, as HF tokenizers' BPE model merges a word
    (tokenizers/src/models/bpe/word.rs, merge_all): the characters become symbols (a character missing
    from the vocabulary is dropped); the pending merge of lowest rank, leftmost first, is applied, and
    the pairs it forms with its neighbours are queued; a queued merge whose symbols changed is skipped.

    A merge `left right` counts only when left + right is a token, like the pairs the HF model accepts.
    Construction is two dict builds at C speed, so a 262k-token vocabulary is ready in tens of ms."""

    _CACHE_LIMIT = 1 << 16

    def __init__(self, vocab: dict[str, int], merges: list[str]):
        if not all(map(operator.contains, merges, itertools.repeat(" "))):
            rank = next(r for r, m in enumerate(merges) if " " not in m)
            raise TokenizerError(f"tokenizer.ggml.merges[{rank}] = {merges[rank]!r} is not 'left right'")
        self.vocab = vocab
        self._ranks = dict(zip(merges, range(len(merges))))                          # repeated merge: last rank
        self._cache: dict[str, list[int]] = {}

    def _merge(self, left: str, right: str) -> tuple[int, str] | None:
        rank = self._ranks.get(left + " " + right)
        return None if rank is None or left + right not in self.vocab else (rank, left + right)

    def encode(self, piece: str) -> list[int]:
        ids = self._cache.get(piece)
        if ids is None:
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            ids = self._cache[piece] = [self.vocab[s] for s in self._symbols(piece)]
        return ids

    def _symbols(self, piece: str) -> list[str]:
        symbols: list[str | None] = [ch for ch in piece if ch in self.vocab]
        n = len(symbols)
        nxt, prv = list(range(1, n + 1)), list(range(-1, n - 1))      # linked list; n and -1 end it
        queue = [(m[0], i, m[1]) for i in range(n - 1) if (m := self._merge(symbols[i], symbols[i + 1]))]
        heapq.heapify(queue)
        while queue:
            _, pos, merged = heapq.heappop(queue)
            right = nxt[pos]
            if symbols[pos] is None or right == n:
                continue
            pair = self._merge(symbols[pos], symbols[right])
            if pair is None or pair[1] != merged:                      # stale: a neighbour merged first
                continue
            symbols[pos], symbols[right] = merged, None
            nxt[pos] = nxt[right]
            if nxt[pos] < n:
                prv[nxt[pos]] = pos
            if prv[pos] >= 0 and (m := self._merge(symbols[prv[pos]], merged)):
                heapq.heappush(queue, (m[0], prv[pos], m[1]))
            if nxt[pos] < n and (m := self._merge(merged, symbols[nxt[pos]])):
                heapq.heappush(queue, (m[0], pos, m[1]))
        return [s for s in symbols if s is not None]


class StreamDecoder:
    """Turns ids fed one at a time into text, holding back bytes of a character split across tokens."""

    def __init__(self, tokenizer: Tokenizer, special: bool = True):
        self._tokenizer = tokenizer
        self._special = special
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        """The newly completed text ('' while a multi-byte character is still incomplete)."""
        return self._utf8.decode(self._tokenizer.token_piece(token_id, self._special))

    def flush(self) -> str:
        """Whatever is left at the end of the stream; an unfinished character becomes U+FFFD."""
        return self._utf8.decode(b"", final=True)
