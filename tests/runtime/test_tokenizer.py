"""runtime/tokenizer.py against llama.cpp (llama-cpp-python, vocab_only loads) and on its own.

Vocabularies: the real SmolLM2 file (pre = smollm) and vocab-only GGUF files written with
tests.fixtures.vocab for qwen2 and gpt-4o. The synthetic ones also learn merges from the test strings
taken whole, so merges cross every pre-tokenizer boundary: a piece split differently from llama.cpp
shows up as different ids instead of hiding behind byte tokens.
"""
from __future__ import annotations

import random
import re

import pytest
from llmc.runtime.gguf_file import GGUFFile
from llmc.runtime.tokenizer import StreamDecoder, Tokenizer, TokenizerError

from tests.fixtures.vocab import SPECIAL_TOKENS, write_vocab_only

ORACLE_MISSING = "llama-cpp-python (the llama.cpp oracle) is not installed: pip install .[oracle]"

STRINGS = [
    "", " ", "  ", "\t", "\n", "\n\n\n", " \n \n", "Hello world", " Hello world", "Hello  world   ",
    "I'll've", "I'LL", "don't DON'T we're WE'RE he'd", "1234567", "3.14159 and 1,000,000", "a1b22c333d4444",
    "²½ ٣٤ ①", "日本語のテキスト", "中文分词测试，你好！", "😀😃🎉 emoji 👍🏽 family 👨‍👩‍👧",
    "café naïve résumé Éric", "ÜBER naÏve éRIC aÉb ÉricÜber", "Ελληνικά Кириллица ПРИВЕТ мир",
    "مرحبا بالعالم", "हिन्दी", "tabs\tand\ttabs\t\t", "line1\r\nline2\rline3", "   leading and trailing   ",
    "x  \n  y",
    "def f(x):\n    return x**2  # comment\n", "if (a && b) { c->d[0] = 'e'; }", "<html><p>hi</p></html>",
    "https://example.com/path?q=1&r=2", "$100.00 (50%) #tag @user", "\u00a0nbsp\u3000ideographic\u2003em",
    "zero\u200bwidth", "ＡＢＣ full width １２３", "ALLCAPS CamelCase snake_case kebab-case", "...!!!???",
    "a/b/c\n/d", "x' 's 'S 'll 'LL",
]
# Special tokens inside text; with parse_special=False they must come out as plain text.
SPECIAL_STRINGS = [
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", "a<|endoftext|>b<|endoftext|>",
    "<|im_end|><|im_end|>", "text <|im_start|> spaced", "<think>reason</think>answer",
    "<|start|>assistant<|channel|>final<|message|>Hi<|end|><|return|>", "<|call|> <|constrain|>json",
]
ALL_STRINGS = STRINGS + SPECIAL_STRINGS

# Characters for the seeded fuzz: ASCII classes, accents and combining marks, odd whitespace, scripts,
# emoji sequences, contractions and special-token texts.
POOL = (list("abcxyzABCXYZ'sStTlLdD0123456789 \t\n\r.,;:!?-_/\\()[]{}<>|\"#$%&*+=@^`~")
        + list("éÉüÜßñÑçÇøØåÅæÆœŒ") + ["\u0301", "\u0308", "\u200b", "\u00a0", "\u3000", "\u2003", "\x0b"]
        + list("日本語中文한국어ไทยहिन्दीΑλφαβητοКириллица٣٤²½①Ⅷ") + ["😀", "👍🏽", "👨‍👩‍👧", "🇫🇷"]
        + ["<|im_end|>", "<|endoftext|>", "<|im_start|>", "<|end|>", "<|return|>", "<think>", "  ", "'ll",
           "'VE"])


def _fuzz_strings(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 24))) for _ in range(n)]


def _training_words(pre: str) -> list[str]:
    specials = {text for text, _ in SPECIAL_TOKENS[pre]}
    words = [s for s in STRINGS if s] + _fuzz_strings(150, seed=7)
    return [w for w in words if not any(sp in w for sp in specials)]


@pytest.fixture(scope="module")
def vocab_files(tmp_path_factory, smollm2_path) -> dict[str, str]:
    """name -> GGUF path: smollm2 (real), qwen2 and gpt-4o (vocab-only, merges trained on test text)."""
    tmp = tmp_path_factory.mktemp("vocab")
    files = {"smollm2": smollm2_path}
    for arch, pre in (("qwen2", "qwen2"), ("gpt-oss", "gpt-4o")):
        path = tmp / f"{pre}.gguf"
        write_vocab_only(path, arch, pre, n_merges=900, extra_words=_training_words(pre))
        files[pre] = str(path)
    return files


@pytest.fixture(scope="module")
def metadata(vocab_files) -> dict[str, dict]:
    return {name: GGUFFile(path).metadata for name, path in vocab_files.items()}


@pytest.fixture(scope="module")
def tokenizers(metadata) -> dict[str, Tokenizer]:
    return {name: Tokenizer.from_metadata(md) for name, md in metadata.items()}


@pytest.fixture(scope="module")
def oracles(vocab_files):
    llama_cpp = pytest.importorskip("llama_cpp", reason=ORACLE_MISSING)
    return {name: llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
            for name, path in vocab_files.items()}


NAMES = ["smollm2", "qwen2", "gpt-4o"]


def _mismatches(tok: Tokenizer, llm, strings, add_special: bool, parse_special: bool) -> list[str]:
    bad = []
    for s in strings:
        ref = llm.tokenize(s.encode(), add_bos=add_special, special=parse_special)
        got = tok.encode(s, add_special=add_special, parse_special=parse_special)
        if ref != got:
            bad.append(f"{s!r}: llama.cpp {ref} != ours {got}")
    return bad


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("parse_special", [True, False])
def test_ids_match_llama_cpp(name, parse_special, tokenizers, oracles):
    bad = _mismatches(tokenizers[name], oracles[name], ALL_STRINGS, True, parse_special)
    assert not bad, f"{len(bad)}/{len(ALL_STRINGS)} strings differ:\n" + "\n".join(bad)


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_matches_llama_cpp(name, tokenizers, oracles):
    strings = _fuzz_strings(300, seed=1)
    bad = _mismatches(tokenizers[name], oracles[name], strings[:150], False, True)
    bad += _mismatches(tokenizers[name], oracles[name], strings[150:], False, False)
    assert not bad, f"{len(bad)}/{len(strings)} strings differ:\n" + "\n".join(bad[:10])


def test_gpt4o_splits_non_ascii_mixed_case_like_llama_cpp(tokenizers, oracles):
    # llama.cpp's rewrite of o200k's \p{Lu}/\p{Ll} classes splits "ÜBER" as Ü|BER and keeps "naÏve";
    # the original HF regex would not. The vocabulary has merges spanning both spellings.
    tok, llm = tokenizers["gpt-4o"], oracles["gpt-4o"]
    for s in ["ÜBER", "naÏve", "aÉb", "ÉricÜber", " ÜBER naÏve"]:
        assert tok.encode(s) == llm.tokenize(s.encode(), add_bos=False, special=True), s


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("special", [True, False])
def test_detokenize_matches_llama_cpp(name, special, tokenizers, oracles):
    tok, llm = tokenizers[name], oracles[name]
    for s in ALL_STRINGS:
        ids = llm.tokenize(s.encode(), add_bos=False, special=True)
        assert tok.decode_bytes(ids, special=special) == llm.detokenize(ids, special=special), s


@pytest.mark.parametrize("name", NAMES)
def test_special_ids_match_llama_cpp(name, tokenizers, oracles):
    import llama_cpp

    tok, llm = tokenizers[name], oracles[name]
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    eog = {i for i in range(tok.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)}
    assert tok.eog_ids == eog
    assert (tok.bos_id, tok.eos_id, tok.n_vocab) == (llm.token_bos(), llm.token_eos(), llm.n_vocab())


def test_bos_only_when_gguf_says_so(tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp", reason=ORACLE_MISSING)
    for add_bos in (True, False, None):
        path = tmp_path / f"bos-{add_bos}.gguf"
        write_vocab_only(path, "qwen2", "qwen2", add_bos=add_bos)
        tok = Tokenizer.from_metadata(GGUFFile(path).metadata)
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        ids = tok.encode("Hi there")
        assert ids == llm.tokenize(b"Hi there", add_bos=True, special=True)
        assert (ids[0] == tok.bos_id) == bool(add_bos)
        assert tok.encode("Hi there", add_special=False) == (ids[1:] if add_bos else ids)


# --- without the oracle ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_round_trip(name, tokenizers):
    tok = tokenizers[name]
    for s in ALL_STRINGS + _fuzz_strings(100, seed=3):
        assert tok.decode(tok.encode(s)) == s


def test_gpt_oss_end_is_not_eog(tokenizers):
    tok = tokenizers["gpt-4o"]
    ids = {t: tok.token_id(t) for t in ("<|return|>", "<|call|>", "<|end|>", "<|endoftext|>")}
    assert {ids["<|return|>"], ids["<|call|>"], ids["<|endoftext|>"]} <= tok.eog_ids
    assert ids["<|end|>"] not in tok.eog_ids


def test_control_tokens_hidden_when_not_special(tokenizers):
    tok = tokenizers["qwen2"]
    ids = tok.encode("<|im_start|>Hi<|im_end|>")
    assert tok.decode(ids) == "<|im_start|>Hi<|im_end|>"
    assert tok.decode(ids, special=False) == "Hi"
    assert tok.encode("<|im_end|>", parse_special=False) != [tok.token_id("<|im_end|>")]


def test_stream_decoder_holds_back_split_characters(tokenizers):
    tok = tokenizers["qwen2"]
    ids = tok.encode("ab🦙c")
    pieces = [tok.token_piece(i) for i in ids]
    assert any(len(p) < 4 and p and p[0] >= 0xF0 for p in pieces), "emoji should be split across byte tokens"
    stream = StreamDecoder(tok)
    out = [stream.feed(i) for i in ids] + [stream.flush()]
    assert "".join(out) == "ab🦙c"
    assert all("\ufffd" not in piece for piece in out)
    assert "🦙" in out  # emitted whole, once its last byte arrived


def test_stream_decoder_matches_decode_on_fuzz(tokenizers):
    tok = tokenizers["smollm2"]
    for s in _fuzz_strings(50, seed=5):
        stream = tok.stream_decoder()
        assert "".join(stream.feed(i) for i in tok.encode(s)) + stream.flush() == s


def test_stream_decoder_flushes_an_unfinished_character(tokenizers):
    tok = tokenizers["qwen2"]
    first_byte = tok.encode("🦙")[0]
    stream = tok.stream_decoder()
    assert stream.feed(first_byte) == ""
    assert stream.flush() == "\ufffd"


def _metadata(**overrides):
    md = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "qwen2", "tokenizer.ggml.tokens": ["a", "b"],
          "tokenizer.ggml.token_type": [1, 1], "tokenizer.ggml.merges": []}
    md.update(overrides)
    return md


@pytest.mark.parametrize("key,value", [("tokenizer.ggml.model", "bert"), ("tokenizer.ggml.pre", "llama-bpe"),
                                       ("tokenizer.ggml.pre", "default")])
def test_unsupported_tokenizer_is_named(key, value):
    with pytest.raises(TokenizerError, match=f"{re.escape(key)}.*{re.escape(value)}"):
        Tokenizer.from_metadata(_metadata(**{key: value}))


def test_missing_and_inconsistent_metadata():
    with pytest.raises(TokenizerError, match=r"tokenizer\.ggml\.model"):
        Tokenizer.from_metadata({})
    with pytest.raises(TokenizerError, match="token_type"):
        Tokenizer.from_metadata(_metadata(**{"tokenizer.ggml.token_type": [1]}))
    with pytest.raises(TokenizerError, match="bos_token_id"):
        Tokenizer.from_metadata(_metadata(**{"tokenizer.ggml.bos_token_id": 7}))


# ---- the bulk construction against the per-token definitions ------------------------------------------

def _hf_bpe(md):
    """HF tokenizers' own BPE model on the same vocabulary and merges: what `_BPE` must reproduce."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models

    vocab = {}
    for i, t in enumerate(md["tokenizer.ggml.tokens"]):
        vocab.setdefault(t, i)
    pairs = [tuple(m.split(" ", 1)) for m in md["tokenizer.ggml.merges"]]
    pairs = [(a, b) for a, b in pairs if a in vocab and b in vocab and a + b in vocab]
    return HFTokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False)).model


@pytest.mark.parametrize("name", NAMES)
def test_bpe_merges_like_hf_tokenizers(name, metadata, tokenizers):
    """Every pre-tokenized piece of the test strings gets the ids HF's BPE model gives it."""
    tok = tokenizers[name]
    hf = _hf_bpe(metadata[name])
    pieces = {piece for s in ALL_STRINGS + _fuzz_strings(300, seed=9)
              for fragment in tok._partition(s, False) if isinstance(fragment, str)
              for piece, _ in tok._pre_tokenizer.pre_tokenize_str(fragment)}
    bad = [p for p in sorted(pieces) if tok._bpe.encode(p) != [t.id for t in hf.tokenize(p)]]
    assert not bad and len(pieces) > 300, bad[:10]


def test_bulk_pieces_equal_per_token_decoding():
    """Pieces from the one-lookup path equal the per-token definition, also for malformed texts (characters
    outside GPT-2's byte map), repeated texts and every token type."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from llmc.runtime.tokenizer import _byte_decode, _unicode_to_byte

    chars = st.sampled_from(sorted(_unicode_to_byte()) + ["\x00", "\x85", "\xa0", "\xad", "\u0144", "中", "🦙"])
    token = st.text(chars, max_size=6) | st.sampled_from(["<|im_end|>", "<|endoftext|>", "<|end|>", "Ġthe"])
    kinds = st.sampled_from([1, 1, 1, 2, 3, 4, 5, 6])

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.tuples(token, kinds), min_size=1, max_size=40))
    def check(vocab):
        texts, types = [t for t, _ in vocab], [k for _, k in vocab]
        tok = Tokenizer(texts, types, [], "qwen2")
        special = tok._user_defined | tok._control
        for i, (text, kind) in enumerate(vocab):
            want = text.encode() if i in special else _byte_decode(text) if kind == 1 else b""
            assert tok.token_piece(i) == want, (i, text, kind)

    check()
