"""SmolLM2 at each of the 13 presets llama.cpp's llama-quantize writes, in ONE generic C artifact, against
llama.cpp on the same file.

The files mix weight types per tensor as real downloads do (a small model's Q4_K_M is mostly Q5_0, since
rows of 576 cannot be K-quants; see tests/fixtures/presets.py for what each holds). Tolerances are the
acceptance bounds of whole-model agreement on quantized files: top-1 >= 0.93 and median per-position
max |Δlogit| <= 0.15 x std of llama.cpp's logits, over >= 64 teacher-forced positions. Activation
quantization makes both sides round differently at near-ties, hence not 1.0 / 0.01.
"""
import os

import pytest

import llmc
from llmc.agreement import compare_logits
from llmc.compiler.driver import compile_model
from tests.fixtures import presets

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")
TEXT = ("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg developed "
        "a system of movable metal type in the German city of Mainz. Before his invention, books were copied "
        "by hand, which made them rare and expensive. The new machines spread quickly across Europe, and within "
        "fifty years millions of books had been printed. This change helped scholars share ideas.")
TOP1_MIN, RATIO_MAX, MIN_POSITIONS = 0.93, 0.15, 64


@pytest.fixture(scope="module")
def llama_c(tmp_path_factory) -> str:
    """One generic C artifact of archs/llama.llmc: every preset loads into the same library."""
    out = tmp_path_factory.mktemp("llama-c-presets")
    compile_model(os.path.join(ARCHS, "llama.llmc"), "c", str(out))
    return str(out)


@pytest.mark.parametrize("name", presets.PRESETS)
def test_preset_agrees_with_llama_cpp(name, smollm2_path, oracle, llama_c):
    from llmc.llamacpp_tools import ToolUnavailable

    try:
        path = presets.preset(smollm2_path, name)
    except ToolUnavailable as exc:            # CI builds llama-quantize; a machine without cmake cannot
        pytest.skip(f"llama-quantize is not available to write the {name} file: {exc}")
    model = llmc.load(llama_c, path, n_ctx=128, n_batch=32)
    ids = model.tokenize(TEXT)
    assert len(ids) >= MIN_POSITIONS
    ours = model.logits(ids)
    theirs = oracle.llama_logits(path, ids)
    agreement = compare_logits(ours, theirs)
    print(name, agreement)
    assert agreement.top1 >= TOP1_MIN and agreement.median_max_abs_over_std <= RATIO_MAX, f"{name}: {agreement}"


def test_ascend_runs_a_mixed_file_with_other_types_on_the_cpu(smollm2_path, oracle, tmp_path):
    """Q4_K_M (Q5_0, Q4_K, Q6_K, Q8_0) compiled for the Ascend 310B with the file: matmuls of types the NPU
    path lacks go to the CPU with the reason in the manifest (what `llmc explain` prints), the Q8_0 ones
    stay on the NPU, and the artifact loads and agrees with llama.cpp (the emulator runs the NPU part)."""
    from llmc.llamacpp_tools import ToolUnavailable

    try:
        path = presets.preset(smollm2_path, "Q4_K_M")
    except ToolUnavailable as exc:
        pytest.skip(f"llama-quantize is not available to write the Q4_K_M file: {exc}")
    result = compile_model(os.path.join(ARCHS, "llama.llmc"), "ascend310b", str(tmp_path), gguf=path)
    matmuls = [o for o in result.manifest["ops"] if o["op"] == "matmul"]
    on_cpu = [o for o in matmuls if o["device"] == "cpu"]
    assert on_cpu and all("takes Q4_0/Q8_0 weights, not" in o["fallback"] for o in on_cpu)
    assert any("Q5_0" in o["fallback"] for o in on_cpu) and any("Q4_K" in o["fallback"] for o in on_cpu)
    assert any(o["device"] == "ascend310b" for o in matmuls)            # the all-Q8_0 ones
    model = llmc.load(str(tmp_path), path, n_ctx=128)
    ids = model.tokenize(TEXT)
    agreement = compare_logits(model.logits(ids), oracle.llama_logits(path, ids))
    print("ascend310b Q4_K_M", agreement)
    assert agreement.top1 >= TOP1_MIN and agreement.median_max_abs_over_std <= RATIO_MAX, str(agreement)
