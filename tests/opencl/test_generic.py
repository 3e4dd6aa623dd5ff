"""Generic OpenCL artifacts (compiled without a GGUF file) on any file the C target runs, against llama.cpp.

Compiled without a file, an op whose device kernel takes only some weight types (the profile's
`weights = [...]`) is placed at load: the artifact has both its device call and a host path, and the
load picks per layer from the file's types (compiler/passes/partition_graph.py, codegen/core/schedule.py).
One artifact per (architecture, profile) serves every file below.

Tolerances (issue 14): top-1 >= 0.93 and median per-position max |Δlogit| <= 0.15 x the std of llama.cpp's
logits; F32 files (no activation quantization in llama.cpp) <= 0.01 x std.
"""
from __future__ import annotations

import os
import shutil

import pytest
from llmc.compiler import report
from llmc.compiler.devices import DEVICES_DIR
from llmc.compiler.driver import compile_model
from llmc.runtime.artifact import read_manifest

import llmc
from llmc.agreement import assert_agrees, compare_logits
from tests.fixtures.models import fixture_tokens, write_llama, write_qwen2
from tests.models.test_agreement import TEXT
from tests.opencl.harness import need_opencl

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")


@pytest.fixture(scope="module")
def generic(tmp_path_factory):
    """(arch, profile) -> a generic artifact directory, compiled on first use."""
    need_opencl()
    made = {}

    def get(arch: str, target: str) -> str:
        if (arch, target) not in made:
            out = tmp_path_factory.mktemp(f"{arch}-{target}-generic")
            compile_model(os.path.join(ARCHS, f"{arch}.llmc"), target, str(out))
            made[arch, target] = str(out)
        return made[arch, target]
    return get


@pytest.fixture(scope="module")
def llama_q4_0_path(tmp_path_factory):
    return write_llama(tmp_path_factory.mktemp("models") / "llama-q4_0.gguf", weight_type="Q4_0")


@pytest.fixture(scope="module")
def qwen2_q4_0_path(tmp_path_factory):
    return write_qwen2(tmp_path_factory.mktemp("models") / "qwen2-q4_0.gguf", weight_type="Q4_0")


FILES = [  # arch, fixture, F32 (the tight bound)
    ("llama", "smollm2_path", False),
    ("llama", "llama_f32_path", True),
    ("llama", "llama_q4_0_path", False),
    ("qwen2", "qwen2_f32_path", True),
    ("qwen2", "qwen2_q8_path", False),
    ("qwen2", "qwen2_q4_0_tied_path", False),
    ("gpt_oss", "gpt_oss_f32_path", True),
    ("gpt_oss", "gpt_oss_path", False),          # MXFP4 experts, Q8_0 the rest
]
CASES = [(target, *f) for target in ("opencl", "adreno") for f in FILES]


@pytest.mark.parametrize("target,arch,fixture,f32", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_generic_artifact_agrees_with_llama_cpp(target, arch, fixture, f32, generic, request, oracle):
    path = request.getfixturevalue(fixture)
    model = llmc.load(generic(arch, target), path, n_ctx=128, n_batch=32)
    ids = model.tokenize(TEXT)[:96] if fixture == "smollm2_path" else fixture_tokens(model.n_vocab, 48, seed=3)
    ours, theirs = model.logits(ids), oracle.llama_logits(path, ids)
    print(target, fixture, compare_logits(ours, theirs), *map(str, model.placement), sep="\n  ")
    assert_agrees(ours, theirs, top1_min=0.93, ratio_max=0.01 if f32 else 0.15)


def test_generic_adreno_places_matmuls_by_the_files_types(generic, qwen2_q8_path, qwen2_q4_0_path):
    """Adreno's matmuls take Q4_0: on a Q8_0 file the load sends them to the CPU and says why (the
    re-quantize hint); on a Q4_0 file they stay on the device. The compile's report says they wait."""
    art = generic("qwen2", "adreno")
    manifest = read_manifest(art)
    summary, table = report.summary(manifest), report.explain(manifest)
    assert "decided at load matmul" in summary and "else cpu" in summary
    assert "decided at load: here for Q4_0 weights, else cpu" in table
    q8 = [p for p in llmc.load(art, qwen2_q8_path, n_ctx=32).placement if p.node.startswith("matmul")]
    assert q8 and all(p.on_device == 0 and p.on_fallback > 0 and p.fallback == "cpu" for p in q8)
    assert all(p.fallback_types == "Q8_0" and "llama-quantize --pure" in p.reason for p in q8)
    q4 = [p for p in llmc.load(art, qwen2_q4_0_path, n_ctx=32).placement if p.node.startswith("matmul")]
    assert q4 and all(p.on_device > 0 and p.on_fallback == 0 and p.device == "adreno" for p in q4)


def test_generic_adreno_refuses_other_types_when_the_profile_says_refuse(qwen2_q8_path, tmp_path):
    """With `unsupported = "refuse"` nothing waits for the file: a Q8_0 file is refused at load with the hint."""
    need_opencl()
    profiles = tmp_path / "devices"
    shutil.copytree(DEVICES_DIR, profiles)
    adreno = profiles / "adreno.toml"
    adreno.write_text(adreno.read_text().replace('unsupported = "fallback"', 'unsupported = "refuse"'))
    result = compile_model(os.path.join(ARCHS, "qwen2.llmc"), "adreno", str(tmp_path / "art"),
                           profiles_dir=str(profiles))
    assert not any(n.load_choice for n in result.graph.nodes())
    with pytest.raises(llmc.LlmcError, match=r"type Q8_0, which (embed|matmul) on .* does not take: .*llama-quantize --pure"):
        llmc.load(str(tmp_path / "art"), qwen2_q8_path, n_ctx=32)


def test_run_verbose_prints_the_load_placement(generic, qwen2_q8_path, capsys):
    from llmc.cli import main
    assert main(["run", generic("qwen2", "adreno"), "-m", qwen2_q8_path, "-p", "Hi", "-n", "1", "-c", "32", "-v"]) == 0
    err = capsys.readouterr().err
    assert "placed at load (" in err and "matmul %" in err and ": cpu x2 (Q8_0: matmul on adreno takes Q4_0" in err
