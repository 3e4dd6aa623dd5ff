"""Byte-level BPE tokenizer built from GGUF metadata, matching llama.cpp's token ids.

The pipeline (model-numerics.md §7) is llama.cpp's:

1. Split the text on special tokens (longest token text first), when parse_special. Tokens that llama.cpp
   marks USER_DEFINED are split out even when parse_special is False.
2. Pre-tokenize each remaining fragment with the pre-type's regexes, applied in sequence: every regex
   further splits the pieces of the previous one, and spans it does not match stay pieces.
3. Map the bytes to GPT-2's printable unicode and apply BPE by lowest merge rank.

Steps 2-3 run in HF `tokenizers` (a Split pre-tokenizer per regex, then ByteLevel, then a BPE model built
from the GGUF tokens and merges). The regexes are llama.cpp's own spellings, e.g. its rewrite of the
gpt-4o case classes, so non-ASCII mixed-case words split the way llama.cpp splits them.

Which tokens end generation (`eog_ids`) and which are special also follow llama.cpp's rules, including
the text-based detection it applies to every vocabulary (see `_special_attributes`).
"""
from __future__ import annotations

import codecs
import functools
from collections.abc import Iterable
from typing import Any
from llmc.ir.errors import LlmcError

# tokenizer.ggml.token_type values (llama_token_type)
TYPE_NORMAL = 1
TYPE_UNKNOWN = 2
TYPE_CONTROL = 3
TYPE_USER_DEFINED = 4
TYPE_UNUSED = 5
TYPE_BYTE = 6

_SMOLLM = (
    r"\p{N}",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
)
_QWEN2 = (
    (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
     r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
)
# llama.cpp's spelling of o200k: `\p{Lu}`-style classes become "a letter that is not a-z" (upper-ish run)
# followed by "a letter that is not A-Z" (lower-ish run). The two differ on non-ASCII mixed case.
_CONTRACTION = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
_GPT4O = (
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+" + _CONTRACTION
    + r"|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*" + _CONTRACTION
    + r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)

# tokenizer.ggml.pre -> regexes applied in sequence. Only names that llama.cpp (0.3.36's vendored copy)
# maps to exactly the same behaviour, including clean_spaces = false on detokenize.
PRE_TOKENIZERS: dict[str, tuple[str, ...]] = {
    "smollm": _SMOLLM, "command-r": _SMOLLM,
    "qwen2": _QWEN2, "deepseek-r1-qwen": _QWEN2, "kormo": _QWEN2, "f2llmv2": _QWEN2,
    "gpt-4o": _GPT4O, "llama4": _GPT4O, "kanana2": _GPT4O, "talkie": _GPT4O,
}

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


class Tokenizer:
    """A byte-level BPE tokenizer (tokenizer.ggml.model = "gpt2") that reproduces llama.cpp's ids."""

    def __init__(self, tokens: list[str], token_types: list[int], merges: list[str], pre: str,
                 bos_id: int | None = None, eos_id: int | None = None, add_bos: bool = False,
                 add_eos: bool = False, special_ids: dict[str, int] | None = None):
        if pre not in PRE_TOKENIZERS:
            raise TokenizerError(f"tokenizer.ggml.pre = {pre!r} is not supported; "
                                 f"supported: {', '.join(sorted(PRE_TOKENIZERS))}")
        if len(token_types) != len(tokens):
            raise TokenizerError(f"tokenizer.ggml.token_type has {len(token_types)} entries but "
                                 f"tokenizer.ggml.tokens has {len(tokens)}")
        for name, tid in (("bos", bos_id), ("eos", eos_id)):
            if tid is not None and not 0 <= tid < len(tokens):
                raise TokenizerError(f"tokenizer.ggml.{name}_token_id = {tid} is outside the vocabulary "
                                     f"(n_vocab = {len(tokens)})")
        if add_bos and bos_id is None:
            raise TokenizerError("tokenizer.ggml.add_bos_token is true but there is no bos_token_id")
        if add_eos and eos_id is None:
            raise TokenizerError("tokenizer.ggml.add_eos_token is true but there is no eos_token_id")
        self.pre = pre
        self.tokens = list(tokens)
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.add_bos = add_bos
        self.add_eos = add_eos
        self._user_defined, self._control, self.eog_ids = self._special_attributes(
            token_types, special_ids or {})
        # Special-token partition order: longest text first (ties by id), as llama.cpp's cache.
        specials = [i for i in self._user_defined | self._control if self.tokens[i]]
        self._specials = sorted(specials, key=lambda i: (-len(self.tokens[i].encode("utf-8")), i))
        self._pieces = [
            t.encode("utf-8") if i in self._user_defined or i in self._control else
            _byte_decode(t) if ty == TYPE_NORMAL else b""
            for i, (t, ty) in enumerate(zip(self.tokens, token_types, strict=True))]
        self._bpe = self._build_bpe(merges)

    @classmethod
    def from_metadata(cls, md: dict[str, Any]) -> Tokenizer:
        """Build from a GGUF metadata dict (GGUFFile(path).metadata)."""
        model = _require(md, "tokenizer.ggml.model")
        if model != "gpt2":
            raise TokenizerError(f"tokenizer.ggml.model = {model!r} is not supported; llmc supports "
                                 f"byte-level BPE ('gpt2')")
        pre = md.get("tokenizer.ggml.pre", "default")
        if pre not in PRE_TOKENIZERS:
            raise TokenizerError(f"tokenizer.ggml.pre = {pre!r} is not supported; "
                                 f"supported: {', '.join(sorted(PRE_TOKENIZERS))}")
        tokens = _require(md, "tokenizer.ggml.tokens")
        types = md.get("tokenizer.ggml.token_type", [TYPE_NORMAL] * len(tokens))
        special_ids = {name: md[f"tokenizer.ggml.{name}_token_id"]
                       for name in ("eot", "eom", "fim_pad", "fim_rep", "fim_sep")
                       if f"tokenizer.ggml.{name}_token_id" in md}
        return cls(tokens, [int(t) for t in types], _require(md, "tokenizer.ggml.merges"), pre,
                   bos_id=md.get("tokenizer.ggml.bos_token_id"), eos_id=md.get("tokenizer.ggml.eos_token_id"),
                   add_bos=bool(md.get("tokenizer.ggml.add_bos_token", False)),
                   add_eos=bool(md.get("tokenizer.ggml.add_eos_token", False)), special_ids=special_ids)

    @property
    def n_vocab(self) -> int:
        return len(self.tokens)

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
                ids.extend(self._bpe.encode(fragment, add_special_tokens=False).ids)
        if add_special and self.add_eos:
            ids.append(self.eos_id)
        return ids

    def _partition(self, text: str, parse_special: bool) -> list[str | int]:
        """Split text into raw fragments (str) and special token ids (int), like tokenizer_st_partition."""
        fragments: list[str | int] = [text] if text else []
        for tid in self._specials:
            if not parse_special and tid not in self._user_defined:
                continue
            needle = self.tokens[tid]
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
                    if part:
                        split.append(part)
            fragments = split
        return fragments

    # --- decode -------------------------------------------------------------------------------------

    def token_piece(self, token_id: int, special: bool = True) -> bytes:
        """The bytes token_id stands for. Control tokens render as their text only when `special`."""
        if not special and token_id in self._control:
            return b""
        return self._pieces[token_id]

    def decode_bytes(self, ids: Iterable[int], special: bool = True) -> bytes:
        return b"".join(self.token_piece(i, special) for i in ids)

    def decode(self, ids: Iterable[int], special: bool = True) -> str:
        """Text of ids; invalid UTF-8 (a character cut between tokens) becomes U+FFFD."""
        return self.decode_bytes(ids, special).decode("utf-8", errors="replace")

    def stream_decoder(self, special: bool = True) -> StreamDecoder:
        return StreamDecoder(self, special)

    # --- construction helpers -----------------------------------------------------------------------

    def _special_attributes(self, types: list[int], special_ids: dict[str, int]):
        """(user_defined ids, control ids, eog ids) after llama.cpp's text-based fix-ups.

        llama.cpp makes EOG: eos, eot, eom, FIM pad/repo/sep and every token whose text is in _EOG_TEXTS
        (those become CONTROL if they were not). For o200k_harmony, when <|return|> and <|call|> are EOG,
        <|end|> is taken out of EOG and becomes USER_DEFINED; <|channel|> and friends are always
        USER_DEFINED.
        """
        by_text = {t: i for i, t in enumerate(self.tokens)}
        control = {i for i, ty in enumerate(types) if ty in (TYPE_CONTROL, TYPE_UNKNOWN)}
        user_defined = {i for i, ty in enumerate(types) if ty == TYPE_USER_DEFINED}
        eog = {i for t, i in by_text.items() if t in _EOG_TEXTS}
        for name, texts in _FIM_EOG_TEXTS.items():
            tid = special_ids.get(name)
            if tid is None:
                tid = next((by_text[t] for t in texts if t in by_text), None)
            if tid is not None:
                eog.add(tid)
        for tid in (self.eos_id, special_ids.get("eot"), special_ids.get("eom")):
            if tid is not None and 0 <= tid < len(self.tokens):
                eog.add(tid)
        eog = {i for i in eog if 0 <= i < len(self.tokens)}
        control |= {i for i in eog if i not in user_defined}
        for text in _ALWAYS_RENDERED:
            if text in by_text:
                control.discard(by_text[text])
                user_defined.add(by_text[text])
        eog_texts = {self.tokens[i] for i in eog}
        has_call = "<|call|>" in eog_texts or "<|calls|>" in eog_texts
        if "<|end|>" in eog_texts and has_call and ("<|return|>" in eog_texts or "<|flush|>" in eog_texts):
            end = by_text["<|end|>"]
            eog.discard(end)
            control.discard(end)
            user_defined.add(end)
        user_defined -= control
        return user_defined, control, eog

    def _build_bpe(self, merges: list[str]):
        from tokenizers import Regex, models, pre_tokenizers
        from tokenizers import Tokenizer as HFTokenizer

        vocab: dict[str, int] = {}
        for i, t in enumerate(self.tokens):
            vocab.setdefault(t, i)
        pairs = []
        for rank, merge in enumerate(merges):
            left, sep, right = merge.partition(" ")
            if not sep:
                raise TokenizerError(f"tokenizer.ggml.merges[{rank}] = {merge!r} is not 'left right'")
            if left in vocab and right in vocab and left + right in vocab:
                pairs.append((left, right))
        bpe = HFTokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False))
        splits = [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in PRE_TOKENIZERS[self.pre]]
        bpe.pre_tokenizer = pre_tokenizers.Sequence(
            splits + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        return bpe


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
