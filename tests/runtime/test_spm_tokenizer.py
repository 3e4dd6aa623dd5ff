"""runtime/spm_tokenizer.py against llama.cpp on the real Gemma 3 270M vocabulary (262144 SentencePiece
tokens with scores, byte fallback, add_space_prefix false) and on a small hand-made SPM vocabulary that
sets add_space_prefix, as Llama 2 and Mistral files do.

The Gemma lines: hand-picked cases (CJK, emoji, runs of spaces and newlines, code, digits, Gemma's chat
markers), every line of this repository's README (prose, shell, Python, markdown tables) and seeded
random strings from a pool of characters, words and special-token texts.
"""
from __future__ import annotations

import os
import random

import pytest

from llmc.compiler.driver import compile_model
from llmc.runtime.artifact import read_gguf
from llmc.runtime.tokenizer import Tokenizer, TokenizerError

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

LINES = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n\n", " \n \n", "Hello world", " Hello world", "Hello  world   ",
    "The quick brown fox jumps over the lazy dog.", "I'll've", "don't DON'T we're WE'RE he'd",
    "1234567", "3.14159 and 1,000,000", "a1b22c333d4444", "0x1F 0b1010 1e-5 -42", "²½ ٣٤ ①",
    "日本語のテキスト", "中文分词测试，你好！", "한국어 문장입니다.", "ภาษาไทย", "😀😃🎉 emoji 👍🏽 family 👨‍👩‍👧 🇫🇷",
    "🦙🦙🦙", "café naïve résumé Éric", "Ελληνικά Кириллица ПРИВЕТ мир", "مرحبا بالعالم", "हिन्दी",
    "tabs\tand\ttabs\t\t", "line1\r\nline2\rline3", "   leading and trailing   ", "x  \n  y",
    "def f(x):\n    return x**2  # comment\n", "if (a && b) { c->d[0] = 'e'; }", "<html><p>hi</p></html>",
    "https://example.com/path?q=1&r=2", "$100.00 (50%) #tag @user", "\u00a0nbsp\u3000ideographic\u2003em",
    "zero\u200bwidth", "ＡＢＣ full width １２３", "ALLCAPS CamelCase snake_case kebab-case", "...!!!???",
    "▁ already a visible space ▁▁", "<0x41> is text, not a byte token", "\x00\x01\x7f control bytes",
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n", "<bos>text<eos>",
    "<start_of_turn><end_of_turn>", "<unk> <pad> <mask>", "<h1>Title</h1>\n\n<b>bold</b>",
]
POOL = (list("abcxyzABCXYZ0123456789 \t\n\r.,;:!?-_/\\()[]{}<>|\"'#$%&*+=@^`~") + list("éÉüÜßñçøåæœ")
        + ["\u0301", "\u200b", "\u00a0", "\u3000", "▁"] + list("日本語中文한국어ไทยहिन्दीΑλφαКирил٣²½①")
        + ["😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "🦙"] + ["the ", "tokenizer ", " of", "ing", "    ", "\n\n", "\t\t"]
        + ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<h1>", "</td>", "[multimodal]"])


def _fuzz(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 30))) for _ in range(n)]


def _readme_lines() -> list[str]:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read().splitlines()


GEMMA_LINES = LINES + _readme_lines() + _fuzz(200, seed=11)


@pytest.fixture(scope="module")
def gemma_metadata(gemma3_270m_path, tmp_path_factory) -> dict:
    """The metadata through an artifact's C reader (any artifact carries it), as llmc.load reads it."""
    out = tmp_path_factory.mktemp("reader")
    compile_model(os.path.join(ROOT, "archs", "llama.llmc"), "c", str(out))
    return read_gguf(str(out), gemma3_270m_path).metadata


@pytest.fixture(scope="module")
def gemma(gemma_metadata) -> Tokenizer:
    return Tokenizer.from_metadata(gemma_metadata)


@pytest.fixture(scope="module")
def gemma_oracle(gemma3_270m_path, oracle):
    import llama_cpp
    return llama_cpp.Llama(model_path=gemma3_270m_path, vocab_only=True, verbose=False)


def _mismatches(tok, llm, lines, add_special: bool, parse_special: bool) -> list[str]:
    bad = []
    for s in lines:
        ref = llm.tokenize(s.encode(), add_bos=add_special, special=parse_special)
        got = tok.encode(s, add_special=add_special, parse_special=parse_special)
        if ref != got:
            bad.append(f"{s!r}: llama.cpp {ref} != ours {got}")
    return bad


def test_gemma_lines_are_enough(gemma):
    assert len(GEMMA_LINES) >= 300
    assert type(gemma).__name__ == "SpmTokenizer" and not gemma.add_space_prefix


@pytest.mark.parametrize("parse_special", [True, False])
def test_gemma_ids_match_llama_cpp(parse_special, gemma, gemma_oracle):
    bad = _mismatches(gemma, gemma_oracle, GEMMA_LINES, True, parse_special)
    assert not bad, f"{len(bad)}/{len(GEMMA_LINES)} lines differ:\n" + "\n".join(bad[:10])


def _llama_detokenize(llm, ids: list[int], special: bool) -> bytes:
    """llama.cpp's own llama_detokenize (what llama-server uses), not llama-cpp-python's Llama.detokenize,
    which joins pieces and applies a space rule of its own."""
    import ctypes

    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    arr = (llama_cpp.llama_token * max(len(ids), 1))(*ids)
    buf = ctypes.create_string_buffer(64 * len(ids) + 16)
    n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, len(buf), False, special)
    assert n >= 0
    return buf.raw[:n]


@pytest.mark.parametrize("special", [True, False])
def test_gemma_detokenize_matches_llama_cpp(special, gemma, gemma_oracle):
    for s in GEMMA_LINES:
        ids = gemma_oracle.tokenize(s.encode(), add_bos=True, special=True)
        assert gemma.decode_bytes(ids, special=special) == _llama_detokenize(gemma_oracle, ids, special), s


def test_gemma_special_ids_match_llama_cpp(gemma, gemma_oracle):
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(gemma_oracle.model)
    eog = {i for i in range(gemma.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)}
    assert gemma.eog_ids == eog
    assert (gemma.bos_id, gemma.eos_id, gemma.n_vocab) == (2, 1, 262144)
    assert (gemma.bos_id, gemma.eos_id) == (gemma_oracle.token_bos(), gemma_oracle.token_eos())


def test_gemma_round_trip(gemma):
    """Every line comes back, except that a literal '▁' in the text decodes as a space (as in llama.cpp:
    SentencePiece writes spaces as '▁')."""
    for s in GEMMA_LINES:
        s = s.replace("▁", " ")
        ids = gemma.encode(s)
        assert ids[0] == gemma.bos_id
        assert gemma.decode(ids[1:]) == s


def test_gemma_byte_fallback_and_streaming(gemma):
    """A character the vocabulary lacks becomes its UTF-8 bytes as <0xNN> tokens; streaming holds the
    bytes back until the character is complete."""
    text = "a\U0001F9CC\U00010348b"          # a troll and a Gothic letter: neither is a Gemma token
    ids = gemma.encode(text, add_special=False)
    pieces = [gemma.token_piece(i) for i in ids]
    assert sum(len(p) == 1 and p[0] >= 0x80 for p in pieces) >= 4, pieces
    stream = gemma.stream_decoder()
    out = [stream.feed(i) for i in ids] + [stream.flush()]
    assert "".join(out) == text and "\ufffd" not in "".join(out)
    assert "\U0001F9CC" in out                   # emitted whole once its last byte arrived


def test_gemma_loads_fast(gemma_metadata):
    import time
    start = time.perf_counter()
    Tokenizer.from_metadata(gemma_metadata)
    assert time.perf_counter() - start < 1.0


# ---- a vocabulary with add_space_prefix (Llama 2, Mistral, TinyLlama) ---------------------------------

def _spm_metadata(scores: dict[str, float] | None = None, **overrides) -> dict:
    """<unk> <s> </s>, the 256 byte tokens, then pieces with scores (the higher merges first)."""
    pieces = {"ll": 0.0, "he": -1.0, "hell": -2.0, "hello": -3.0, "▁hello": -4.0, "or": -5.0, "wor": -6.0,
              "ld": -7.0, "world": -8.0, "▁world": -9.0, "▁": -10.0, "h": -11.0, "e": -12.0, "l": -13.0,
              "o": -14.0, "w": -15.0, "r": -16.0, "d": -17.0, "▁h": -18.0, "a": -19.0, "b": -20.0, "c": -21.0,
              "ab": -30.0, "bc": -31.0, **(scores or {})}
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + list(pieces) + ["<ctl>"]
    types = [2, 3, 3] + [6] * 256 + [1] * len(pieces) + [3]
    md = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
          "tokenizer.ggml.scores": [0.0] * 259 + list(pieces.values()) + [0.0]}
    md.update(overrides)
    return md


def _pieces(tok, text: str) -> list[bytes]:
    return [tok.token_piece(i) for i in tok.encode(text, add_special=False)]


def test_space_prefix_and_defaults():
    tok = Tokenizer.from_metadata(_spm_metadata())
    assert (tok.bos_id, tok.eos_id, tok.add_bos, tok.add_space_prefix) == (1, 2, True, True)
    ids = tok.encode("hello world")
    assert ids[0] == 1 and [tok.token_piece(i) for i in ids[1:]] == [b" hello", b" world"]
    assert tok.decode(ids[1:]) == "hello world"                         # the prefix space is dropped once
    assert _pieces(tok, "<ctl>hello") == [b"<ctl>", b" hello"]          # a fragment after a special: prefixed
    no_prefix = Tokenizer.from_metadata(_spm_metadata(**{"tokenizer.ggml.add_space_prefix": False}))
    assert _pieces(no_prefix, "hello world") == [b"hello", b" world"]


def test_best_score_merges_first():
    """Of the pairs 'ab' and 'bc' the one with the better score merges first; the other cannot form."""
    tok = Tokenizer.from_metadata(_spm_metadata(**{"tokenizer.ggml.add_space_prefix": False}))
    assert _pieces(tok, "abc") == [b"ab", b"c"]
    tok = Tokenizer.from_metadata(_spm_metadata({"bc": -29.0}, **{"tokenizer.ggml.add_space_prefix": False}))
    assert _pieces(tok, "abc") == [b"a", b"bc"]
    assert _pieces(tok, "hello") == [b"hello"] and _pieces(tok, "wor") == [b"wor"]


def test_unknown_character_without_byte_tokens_is_an_error():
    md = _spm_metadata()
    tokens = md["tokenizer.ggml.tokens"]
    keep = [i for i, t in enumerate(tokens) if not t.startswith("<0x")]
    md = {**md, "tokenizer.ggml.tokens": [tokens[i] for i in keep],
          "tokenizer.ggml.token_type": [md["tokenizer.ggml.token_type"][i] for i in keep],
          "tokenizer.ggml.scores": [md["tokenizer.ggml.scores"][i] for i in keep]}
    tok = Tokenizer.from_metadata(md)
    with pytest.raises(TokenizerError, match="no byte token <0xC3>"):
        tok.encode("é")


def test_inconsistent_metadata_is_named():
    with pytest.raises(TokenizerError, match="scores has 3 entries"):
        Tokenizer.from_metadata(_spm_metadata(**{"tokenizer.ggml.scores": [0.0] * 3}))
    with pytest.raises(TokenizerError, match="BYTE but is not <0xNN>"):
        md = _spm_metadata()
        md["tokenizer.ggml.token_type"] = [6] + md["tokenizer.ggml.token_type"][1:]
        Tokenizer.from_metadata(md)


# ---- the synthetic SPM vocabulary against llama.cpp, with and without the space prefix ----------------

@pytest.mark.parametrize("add_space_prefix", [None, False])
def test_synthetic_spm_matches_llama_cpp(add_space_prefix, tmp_path, oracle):
    import llama_cpp

    from tests.fixtures.spm_vocab import write_spm_vocab_only

    path = str(tmp_path / "spm.gguf")
    write_spm_vocab_only(path, add_space_prefix)
    md = read_gguf_metadata_python(path)
    tok = Tokenizer.from_metadata(md)
    assert tok.add_space_prefix == (add_space_prefix is None)
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    lines = LINES + _fuzz(100, seed=12) + ["<s>a</s> b", "x<unk>y"]
    for add_special, parse_special in ((True, True), (False, False)):
        bad = _mismatches(tok, llm, lines, add_special, parse_special)
        assert not bad, f"{len(bad)}/{len(lines)} lines differ:\n" + "\n".join(bad[:10])
    for s in lines:
        ids = llm.tokenize(s.encode(), add_bos=True, special=True)
        for special in (True, False):
            assert tok.decode_bytes(ids, special) == _llama_detokenize(llm, ids, special), s
            assert tok.decode_bytes(ids[1:], special) == _llama_detokenize(llm, ids[1:], special), s


def read_gguf_metadata_python(path: str) -> dict:
    from llmc.runtime.gguf_file import GGUFFile
    return GGUFFile(path).metadata
