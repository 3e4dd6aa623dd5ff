"""One layer at real models' widths through the AscendC kernels (emulated) against llama.cpp.

Small fixtures fit every kernel in one tile; these layers make the matmul chunk K (Qwen2-1.5B's n_ff
8960 is 280 groups, gpt-oss-20b's 2880 is 90: chunks of 64 groups plus a ragged last one), tile rows
over the cores and keep several tokens resident. Tolerances as for the small models
(tests/ascendc/test_model.py): top-1 >= 0.90, median max |Δlogit| <= 0.15 x std. 10 tokens with
n_batch 8: one prefill step of 8 tokens, then 2.
"""
import os

import pytest

import llmc
from llmc.agreement import assert_agrees, compare_logits
from llmc.compiler.driver import compile_model
from tests.fixtures.models import fixture_tokens
from tests.fixtures.widths import write_layer

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")
_FILES: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def layer_file(tmp_path_factory):
    def get(widths: str, weight_type: str) -> str:
        key = (widths, weight_type)
        if key not in _FILES:
            path = tmp_path_factory.mktemp("widths") / f"{widths}-{weight_type}.gguf"
            _FILES[key] = write_layer(path, widths, weight_type)
        return _FILES[key]
    return get


def _agrees(arch, target, gguf, out_dir, oracle):
    result = compile_model(os.path.join(ARCHS, f"{arch}.llmc"), target, str(out_dir), gguf=gguf)
    assert result.manifest["codegen"]["stand_in"] is None
    model = llmc.load(str(out_dir), gguf, n_ctx=32, n_batch=8)
    ids = fixture_tokens(model.n_vocab, 10, seed=5)
    ours, theirs = model.logits(ids), oracle.llama_logits(gguf, ids)
    print(arch, target, os.path.basename(gguf), compare_logits(ours, theirs))
    assert_agrees(ours, theirs, top1_min=0.90, ratio_max=0.15)
    return result


@pytest.mark.parametrize("target", ["ascend310b", "ascend310p", "ascend910b"])
@pytest.mark.parametrize("weight_type", ["Q8_0", "Q4_0"])
def test_qwen2_1_5b_layer(target, weight_type, layer_file, tmp_path, oracle):
    result = _agrees("qwen2", target, layer_file("qwen2-1.5b", weight_type), tmp_path, oracle)
    ops = {k["op"] for k in result.manifest["accelerators"][target]["kernels"].values()}
    assert "matmul" in ops, ops


@pytest.mark.parametrize("target", ["ascend310b", "ascend310p", "ascend910b"])
def test_gpt_oss_20b_layer(target, layer_file, tmp_path, oracle):
    """Attention, q/k/v/o and the lm head in Q8_0 at n_embd 2880; the MXFP4 experts run on the CPU, and
    the compile report says why (no AscendC MoE kernel; CANN has no MXFP4 either)."""
    result = _agrees("gpt_oss", target, layer_file("gpt-oss-20b", "Q8_0"), tmp_path, oracle)
    assert "fallback moe_matmul -> cpu" in result.report and "MXFP4" in result.report
