"""Every op added through ir/pointwise.py, and attention's logit cap, in one compiled model: the C,
OpenCL and Ascend (310B, 910B: generated AscendC kernels on the emulator, F32 matmuls on the CPU)
artifacts compute the reference's logits.

The arch is llama with its blocks rewritten to use gelu, gelu_erf, tanh, exp, div, softcap, layer_norm
(weight and bias), split and attention(logit_cap=...). Every tensor is F32, so the targets differ only in
summation order and libm (AscendC: float sums where ggml sums in double): measured ~1e-6 x std; the bound 3e-3 x std is far below a wrong op (the ops
here move logits by O(std)). gelu rounds through f16, so an input one ulp apart can land one f16 step
away; that costs ~1e-4 x std at most after the matmuls that follow. The reference rounds attention
probabilities to f16 before P·V, as llama.cpp's non-flash path (docs/numerics.md §10); a backend that
keeps them in f32 differs by 1.1e-3 x std here (5e-5 x std with the reference's rounding removed).
"""
import pathlib
import re

import numpy as np
import pytest

import llmc
from llmc.compiler.driver import compile_model
from llmc.ir import pointwise
from tests.fixtures.models import fixture_tokens

ROOT = pathlib.Path(__file__).resolve().parents[2]
MOST_FILES = 4      # the bound: an op lives in at most this many product files
# Names that nothing else in the code is called (gelu is not gelu_erf: names are whole words), so every
# mention counts, comments included. The other pointwise ops share their names with math functions and
# attributes (exp, tanh, scale, split, ...); for them only references to the IR op count.
DISTINCT_NAMES = ("gelu", "gelu_erf", "softcap", "layer_norm", "swiglu_oai")


def product_files() -> list[pathlib.Path]:
    """The product: the code under the package's folders, without tests, archs, docs (*.md) and device
    profiles (compiler/devices/*.toml), which the count excludes."""
    out = []
    for folder in ("ir", "compiler", "codegen", "runtime", "llmc", "examples"):
        for path in sorted((ROOT / folder).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".md", ".pyc"):
                continue
            if path.suffix == ".toml" and path.parent == ROOT / "compiler" / "devices":
                continue
            out.append(path)
    return out


def files_naming(pattern: re.Pattern) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in product_files() if pattern.search(p.read_text(errors="replace"))]


def _word(name: str) -> str:
    return rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_])"


@pytest.mark.parametrize("name", sorted(pointwise.OPS))
def test_a_pointwise_op_is_referenced_in_at_most_four_product_files(name):
    """Files that define the op (Pointwise("add", ...), _unary("gelu", ...)) or refer to the IR op
    (Op.GELU, Op("gelu")): its definition, and the passes that rewrite it (elaborate's operators,
    fuse_ops, decompose_ops)."""
    quoted = rf"\(\s*[\"']{name}[\"']"
    files = files_naming(re.compile(rf"\bOp\.{name.upper()}\b|\bOp{quoted}\s*\)|\b(Pointwise|_unary){quoted}"))
    assert "ir/pointwise.py" in files, files            # the count sees the definition: it can find the name
    assert len(files) <= MOST_FILES, f"{name} is referenced as an op in {len(files)} product files: {files}"


@pytest.mark.parametrize("name", DISTINCT_NAMES)
def test_an_op_with_a_distinct_name_is_mentioned_in_at_most_four_product_files(name):
    files = files_naming(re.compile(_word(name), re.IGNORECASE))
    assert "ir/pointwise.py" in files, files            # the count sees the definition: it can find the name
    assert len(files) <= MOST_FILES, f"{name} appears in {len(files)} product files: {files}"

NEW_OPS_LLAMA = """
arch "llama"
param n_embd    = meta("{arch}.embedding_length")
param n_layer   = meta("{arch}.block_count")
param n_ff      = meta("{arch}.feed_forward_length")
param n_head    = meta("{arch}.attention.head_count")
param n_head_kv = meta("{arch}.attention.head_count_kv")
param head_dim  = n_embd / n_head
param eps       = meta("{arch}.attention.layer_norm_rms_epsilon")
param rope_base = meta("{arch}.rope.freq_base")
param n_vocab   = ne("token_embd.weight", 1)

weight token_embd  = "token_embd.weight"  [n_vocab, n_embd]
weight output_norm = "output_norm.weight" [n_embd]
weight lm_head     = "output.weight"      [n_vocab, n_embd]

input tokens
h = embed(token_embd, tokens)

layer i in n_layer {
    weight attn_norm = "blk.{i}.attn_norm.weight"   [n_embd]
    weight wq        = "blk.{i}.attn_q.weight"      [n_head * head_dim, n_embd]
    weight wk        = "blk.{i}.attn_k.weight"      [n_head_kv * head_dim, n_embd]
    weight wv        = "blk.{i}.attn_v.weight"      [n_head_kv * head_dim, n_embd]
    weight wo        = "blk.{i}.attn_output.weight" [n_embd, n_head * head_dim]
    weight ffn_norm  = "blk.{i}.ffn_norm.weight"    [n_embd]
    weight w_gate    = "blk.{i}.ffn_gate.weight"    [n_ff, n_embd]
    weight w_up      = "blk.{i}.ffn_up.weight"      [n_ff, n_embd]
    weight w_down    = "blk.{i}.ffn_down.weight"    [n_embd, n_ff]

    x = layer_norm(h, attn_norm, ffn_norm, eps=eps)
    q = rope(reshape(linear(x, wq), shape=[T, n_head, head_dim]), positions, mode=norm, n_dims=head_dim, base=rope_base)
    k = rope(reshape(linear(x, wk), shape=[T, n_head_kv, head_dim]), positions, mode=norm, n_dims=head_dim, base=rope_base)
    v = reshape(linear(x, wv), shape=[T, n_head_kv, head_dim])
    h = h + linear(attention(q, k, v, scale=1.0 / sqrt(head_dim), logit_cap=0.7), wo)

    x = layer_norm(h, ffn_norm, eps=eps)
    u = linear(x, w_up)
    lo = split(u, sizes=[n_ff / 2, n_ff / 2], part=0)
    hi = split(u, sizes=[n_ff / 2, n_ff / 2], part=1)
    h = h + linear(gelu(linear(x, w_gate)) * u, w_down) + div(mean(lo), exp(tanh(mean(hi))))
}

output logits = softcap(linear(gelu_erf(rms_norm(h, eps=eps) * output_norm), lm_head), cap=4.0)
"""


@pytest.mark.parametrize("target", ["c", "opencl", "ascend310b", "ascend910b"])
def test_new_ops_match_the_reference(tmp_path, llama_f32_path, target):
    if target == "opencl":
        from tests.opencl.harness import need_opencl
        need_opencl()
    arch = tmp_path / "new_ops.llmc"
    arch.write_text(NEW_OPS_LLAMA)
    result = compile_model(str(arch), target, str(tmp_path / target))
    if target == "opencl":
        on_device = {n.op.value for n in result.graph.nodes() if n.device == "opencl"}
        assert {"gelu", "gelu_erf", "softcap", "layer_norm", "split", "attention"} <= on_device, on_device
    if target.startswith("ascend"):
        # generated AscendC kernels (emulated); gelu_erf has no Erf basic API and stays on the CPU
        on_device = {n.op.value for n in result.graph.nodes() if n.device == target}
        assert {"gelu", "softcap", "layer_norm", "split", "tanh", "exp", "div", "mean"} <= on_device, on_device
        assert "gelu_erf" not in on_device
    model = llmc.load(str(tmp_path / target), llama_f32_path, n_ctx=64, n_batch=8)
    ref = llmc.load(str(arch), llama_f32_path, target="reference", n_ctx=64)
    ids = fixture_tokens(model.n_vocab, 20, seed=4)          # 20 > n_batch: prefill runs in chunks
    want = ref.logits(ids)
    assert np.abs(want).max() <= 4.0 and want.std() > 0.1      # the softcap is active, the logits are not flat
    np.testing.assert_allclose(model.logits(ids), want, rtol=0, atol=3e-3 * want.std())


def test_logit_cap_changes_attention(tmp_path, llama_f32_path):
    """The attention logit cap reaches the kernel: capping at 0.05 changes the logits (a test of the test)."""
    arch = tmp_path / "new_ops.llmc"
    out = {}
    for cap in ("0.7", "0.05"):
        arch.write_text(NEW_OPS_LLAMA.replace("logit_cap=0.7", f"logit_cap={cap}"))
        compile_model(str(arch), "c", str(tmp_path / cap))
        model = llmc.load(str(tmp_path / cap), llama_f32_path, n_ctx=64)
        out[cap] = model.logits(fixture_tokens(model.n_vocab, 6))
    assert np.abs(out["0.7"] - out["0.05"]).max() > 1e-2
