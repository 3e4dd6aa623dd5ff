"""Every DSL and binding error names its place: file:line:col, the source line and a caret."""
import os
import subprocess
import sys

import pytest

from llmc.compiler.elaborate import elaborate, load_arch
from llmc.compiler.parser import parse
from llmc.ir.bind import bind
from llmc.ir.errors import BindError, DslError
from llmc.runtime.gguf_file import GGUFFile

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")
HEAD = 'arch "llama"\nparam n_embd = meta("{arch}.embedding_length")\ninput tokens\n'


def elab(text):
    return elaborate(parse(text, "m.llmc"))


def error_of(text) -> DslError:
    with pytest.raises(DslError) as info:
        elab(text)
    return info.value


def test_syntax_error_has_location_and_caret():
    err = error_of(HEAD + "h = embed(token_embd tokens)\n")
    assert str(err).startswith("m.llmc:4:22: syntax error: unexpected 'tokens'")
    assert "    h = embed(token_embd tokens)\n" + " " * 4 + " " * 21 + "^" in str(err)


def test_unknown_op():
    err = error_of(HEAD + "weight e = \"token_embd.weight\" [10, n_embd]\nh = embd(e, tokens)\noutput logits = h\n")
    assert (err.loc.line, err.loc.col) == (5, 5)
    assert "unknown op 'embd'" in err.message and "embed" in err.message


def test_unknown_hyperparameter():
    err = error_of(HEAD + "weight e = \"token_embd.weight\" [n_vocab, n_embd]\n")
    assert (err.loc.line, err.loc.col) == (4, 33)
    assert "unknown name 'n_vocab'" in err.message and "n_embd" in err.message


def test_reserved_name_is_refused():
    """A param named n_batch would be read as the memory plan's batch size in generated C."""
    err = error_of(HEAD + "param n_batch = 4\n")
    assert (err.loc.line, err.loc.col) == (4, 7)
    assert "'n_batch' is reserved" in err.message


def test_wrong_arity():
    err = error_of(HEAD + "weight e = \"token_embd.weight\" [10, n_embd]\nh = embed(e, tokens)\n"
                   "x = rms_norm(h, h, eps=1e-5)\noutput logits = x\n")
    assert (err.loc.line, err.loc.col) == (6, 5)
    assert "rms_norm takes 1 tensor input (x), got 2" in err.message


def test_unknown_keyword_argument():
    err = error_of(HEAD + "weight e = \"token_embd.weight\" [10, n_embd]\nh = embed(e, tokens)\n"
                   "x = rms_norm(h, epsilon=1e-5)\noutput logits = x\n")
    assert "rms_norm has no argument 'epsilon'; it takes: eps, x" in err.message
    assert (err.loc.line, err.loc.col) == (6, 17)


def test_shape_mismatch_found_at_elaboration():
    err = error_of(HEAD + 'weight e = "token_embd.weight" [10, 8]\nweight w = "w" [4, 3]\n'
                   "h = embed(e, tokens)\noutput logits = linear(h, w)\n")
    assert (err.loc.line, err.loc.col) == (7, 17)
    assert "shape mismatch: matmul of x (T, 8) by weight (4, 3): input features: 8 = 8 vs 3 = 3" in err.message


def test_tensor_name_with_bad_characters_never_reaches_codegen():
    err = error_of(HEAD + 'weight e = "token_embd); system(x" [10, n_embd]\n')
    assert "GGUF tensor name" in err.message


def test_unknown_placeholder_in_tensor_name():
    err = error_of(HEAD + 'weight e = "blk.{j}.w" [10, n_embd]\n')
    assert "unknown placeholder {j}" in err.message


@pytest.fixture(scope="module")
def llama_graph():
    return load_arch(os.path.join(ARCHS, "llama.llmc"))


def test_gguf_missing_required_key(llama_graph, smollm2_path):
    g = GGUFFile(smollm2_path)
    md = dict(g.metadata)
    del md["llama.attention.layer_norm_rms_epsilon"]
    with pytest.raises(BindError) as info:
        bind(llama_graph, md, g.tensors, "smol.gguf")
    assert "smol.gguf lacks the metadata key 'llama.attention.layer_norm_rms_epsilon'" in str(info.value)
    assert info.value.loc.line == 11 and "param eps" in info.value.loc.text


def test_gguf_missing_tensor(llama_graph, smollm2_path):
    g = GGUFFile(smollm2_path)
    tensors = {k: v for k, v in g.tensors.items() if k != "blk.7.ffn_up.weight"}
    with pytest.raises(BindError) as info:
        bind(llama_graph, g.metadata, tensors, "smol.gguf")
    assert "lacks the tensor 'blk.7.ffn_up.weight' that weight 'w_up' needs" in str(info.value)
    assert "ffn_up" in info.value.loc.text


def test_gguf_tensor_shape_differs(llama_graph, smollm2_path):
    g = GGUFFile(smollm2_path)
    md = dict(g.metadata)
    md["llama.feed_forward_length"] = 1024
    with pytest.raises(BindError) as info:
        bind(llama_graph, md, g.tensors, "smol.gguf")
    msg = str(info.value)
    assert "tensor 'blk.0.ffn_gate.weight' in smol.gguf has shape (1536, 576)" in msg
    assert "'w_gate' is declared (1024, 576) = (n_ff, n_embd)" in msg


def test_gguf_arch_differs(smollm2_path):
    g = GGUFFile(smollm2_path)
    with pytest.raises(BindError) as info:
        bind(load_arch(os.path.join(ARCHS, "qwen2.llmc")), g.metadata, g.tensors, "smol.gguf")
    assert "smol.gguf holds a 'llama' model but" in str(info.value) and "describes 'qwen2'" in str(info.value)


def test_cli_prints_error_without_traceback(tmp_path):
    bad = tmp_path / "bad.llmc"
    bad.write_text(HEAD + "h = frobnicate(tokens)\n")
    proc = subprocess.run([sys.executable, "-m", "llmc.cli", "compile", str(bad), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"{bad}:4:5: unknown op 'frobnicate'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_unknown_target(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "llmc.cli", "compile", "llama", "--target", "tpu9",
                           "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 1 and "unknown target 'tpu9'" in proc.stderr and "Traceback" not in proc.stderr


def test_meta_period_takes_a_key_and_a_default():
    err = error_of(HEAD + "param p = meta_period(6)\n")
    assert (err.loc.line, err.loc.col) == (4, 11)
    assert 'meta_period() takes a GGUF key string and an optional default: meta_period("key", 1)' in err.message
    err = error_of(HEAD + 'param p = 1 + meta_period("{arch}.attention.sliding_window_pattern")\n')
    assert "meta_period() may only stand alone on the right of a `param`" in err.message


def test_weight_choice_reads_n_ctx_only_there():
    weight = 'optional weight f = "f_long.weight" if n_ctx > 4096 else "f_short.weight" [4]\n'
    graph = elab(HEAD + weight + 'weight e = "token_embd.weight" [10, n_embd]\noutput logits = embed(e, tokens)\n')
    node = next(n for n in graph.weights() if n.label == "f")
    assert (node.attrs["gguf"], node.attrs["gguf_then"]) == ("f_short.weight", "f_long.weight")
    err = error_of(HEAD + "param p = n_ctx\n")
    assert "unknown name 'n_ctx'" in err.message
    err = error_of(HEAD + "param n_ctx = 4\n" + weight)
    assert "a parameter of that name hides it" in err.message and err.loc.line == 5
    err = error_of(HEAD + 'weight f = "f long" if n_ctx > 1 else "f_short.weight" [4]\n')
    assert "GGUF tensor name 'f long'" in err.message and (err.loc.line, err.loc.col) == (4, 12)
