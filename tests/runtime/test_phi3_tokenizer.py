"""Phi-3's right-stripping special tokens: in a file whose general.name holds "phi3" or "phi-3", llama.cpp
drops the whitespace after every special token but <unk>, <s> and <|endoftext|> (so the newline after
<|end|> or <|user|> in chat-formatted text is not a token). Our tokenizer against llama.cpp on a Phi-3
style SentencePiece vocabulary (tests/fixtures/phi3.py), with the name and without it.
"""
from __future__ import annotations

import random

import pytest

from llmc.runtime.gguf_file import GGUFFile
from llmc.runtime.tokenizer import Tokenizer
from tests.fixtures.phi3 import PHI3_ADDED_TOKENS, write_phi3_vocab_only

CHAT = [
    "<|user|>\nHello there<|end|>\n<|assistant|>\n",
    "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n4<|end|>\n",
    "<|user|>\n\n\n  indented question\t<|end|>\n\n<|assistant|>   answer<|end|><|endoftext|>",
    "<s><|user|>\nhi<|end|>\n<|assistant|>\n", "<s> leading space kept</s> \n stripped",
    "<|endoftext|> space kept\n<unk>\n kept too", "<|placeholder1|> \t\r\n\f\v text after user-defined",
    "<|end|>", "<|end|>   ", "  <|end|>  ", "\n<|user|>\n", "text<|end|>text<|end|>\ntext", "<|end|><|end|>\n\n<|end|>",
    "a\u00a0<|end|>\u00a0b",                         # a no-break space is not C whitespace: kept
]
SPECIALS = [t for t, _ in PHI3_ADDED_TOKENS] + ["<s>", "</s>", "<unk>"]
POOL = list("abcxyz .,!?\n\t\r") + ["  ", "\n\n", " \n ", "the ", "quick ", "日本", "😀"] + SPECIALS * 2


def _fuzz(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 24))) for _ in range(n)]


LINES = CHAT + _fuzz(200, seed=5)


@pytest.fixture(scope="module", params=["Phi3 mini llmc test", "Phi-3-mini-4k-instruct", "llmc test vocabulary"])
def vocab(request, tmp_path_factory, oracle):
    """(our tokenizer, llama.cpp's) on the same file; the last name gets no right-stripping in either."""
    import llama_cpp

    path = write_phi3_vocab_only(tmp_path_factory.mktemp("phi3-vocab") / "vocab.gguf", name=request.param)
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    return Tokenizer.from_metadata(GGUFFile(path).metadata), llm, request.param


@pytest.mark.parametrize("parse_special", [True, False])
def test_chat_text_tokenizes_as_llama_cpp(vocab, parse_special):
    tok, llm, _ = vocab
    bad = []
    for s in LINES:
        ref = llm.tokenize(s.encode(), add_bos=True, special=parse_special)
        got = tok.encode(s, add_special=True, parse_special=parse_special)
        if ref != got:
            bad.append(f"{s!r}: llama.cpp {ref} != ours {got}")
    assert not bad, f"{len(bad)}/{len(LINES)} lines differ:\n" + "\n".join(bad[:10])


def test_the_newline_after_end_is_dropped_only_for_phi3(vocab):
    """The rule shows: with a Phi-3 name, <|end|>\n<|assistant|> is two tokens; without, the newline (with
    its space prefix) comes between them."""
    tok, llm, name = vocab
    ids = tok.encode("<|end|>\n<|assistant|>", add_special=False)
    assert ids == llm.tokenize("<|end|>\n<|assistant|>".encode(), add_bos=False, special=True)
    assert (len(ids) == 2) == (name != "llmc test vocabulary")
