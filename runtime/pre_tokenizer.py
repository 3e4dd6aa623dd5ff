"""Step 2 of runtime/tokenizer.py's pipeline: the pre-tokenizer regexes of each supported
tokenizer.ggml.pre, in llama.cpp's own spellings (src/llama-vocab.cpp), and the HF `tokenizers`
pre-tokenizer that applies them."""
from __future__ import annotations

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


def pre_tokenizer(pre: str):
    """HF tokenizers' pre-tokenizer: the pre-type's regexes as isolated splits, then bytes to GPT-2's
    printable characters. It holds no vocabulary, so it is built in microseconds."""
    from tokenizers import Regex, pre_tokenizers

    splits = [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in PRE_TOKENIZERS[pre]]
    return pre_tokenizers.Sequence(splits + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
