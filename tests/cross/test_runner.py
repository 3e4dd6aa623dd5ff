"""bin/llmc-run, the artifact's Python-free runner: on x86 it writes exactly the logits llmc.load computes;
on x86 and under qemu-aarch64 it refuses hostile GGUF files (the C reader's corrupt-file cases from
tests/runtime/test_c_gguf.py, metadata that contradicts the tensors) and bad arguments with one line on
stderr and exit status 1, never a signal."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import llmc
from llmc.codegen.c.build import RUNNER
from tests.cross.qemu import qemu
from tests.cross.test_params_c import _patched
from tests.runtime.test_c_gguf import CORRUPT_CASES


def _run(artifact: str, machine: str, args: list[str]) -> subprocess.CompletedProcess:
    command = [str(Path(artifact, RUNNER)), *map(str, args)]
    if machine == "aarch64":
        return qemu(command, timeout=120)
    return subprocess.run(command, capture_output=True, timeout=120)


@pytest.fixture(params=["x86_64", "aarch64"])
def runner(request, llama_native):
    """(artifact, machine) of a generic llama artifact: this machine's, or aarch64's under qemu."""
    if request.param == "aarch64":
        return request.getfixturevalue("llama_aarch64"), "aarch64"
    return llama_native, "x86_64"


def _refused(done: subprocess.CompletedProcess, *fragments: str) -> str:
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 1, f"exit {done.returncode} (negative: a signal); stderr {err!r}"
    assert err.startswith("llmc-run: "), err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    return err


def test_logits_equal_python(llama_native, llama_f32_path, tmp_path):
    ids = [5, 17, 3, 99, 42, 7, 250, 1, 64]
    out = tmp_path / "logits.f32"
    done = _run(llama_native, "x86_64", ["-m", llama_f32_path, "--ids", ",".join(map(str, ids)), "--logits", out,
                                         "-t", "2", "-b", "4"])
    assert done.returncode == 0, done.stderr
    model = llmc.load(llama_native, llama_f32_path, n_ctx=len(ids), n_batch=4)
    want = model.logits(ids)
    got = np.fromfile(out, "<f4").reshape(len(ids), model.n_vocab)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", sorted(CORRUPT_CASES))
def test_corrupt_file_is_refused(runner, tmp_path, case):
    artifact, machine = runner
    data, expected = CORRUPT_CASES[case]()
    path = tmp_path / f"{case}.gguf"
    path.write_bytes(data)
    _refused(_run(artifact, machine, ["-m", path, "--ids", "1,2", "--logits", tmp_path / "out.f32"]),
             f"{path}: ", *expected)
    assert not (tmp_path / "out.f32").exists()


def test_metadata_contradicting_the_tensors_is_refused(runner, llama_f32_path, tmp_path):
    artifact, machine = runner
    out = tmp_path / "out.f32"
    wide = _patched(llama_f32_path, tmp_path / "wide.gguf", "llama.embedding_length", 64)
    _refused(_run(artifact, machine, ["-m", wide, "--ids", "1", "--logits", out]),
             "tensor 'token_embd.weight'", "has ne [96, ", "the model expects [64, ")
    heads = _patched(llama_f32_path, tmp_path / "heads.gguf", "llama.attention.head_count", 5)
    _refused(_run(artifact, machine, ["-m", heads, "--ids", "1", "--logits", out]),
             "tensor 'blk.0.attn_k.weight'", "the model expects [96, 38]")   # head_dim 96 / 5 = 19.2; k: 2 heads -> 38 rows
    gone = _patched(llama_f32_path, tmp_path / "gone.gguf", "llama.block_count", None)
    _refused(_run(artifact, machine, ["-m", gone, "--ids", "1", "--logits", out]),
             "lacks the metadata key 'llama.block_count' that parameter 'n_layer' needs (", "llama.llmc:")


def test_other_architecture_is_refused(runner, qwen2_q8_path, tmp_path):
    artifact, machine = runner
    _refused(_run(artifact, machine, ["-m", qwen2_q8_path, "--ids", "1", "--logits", tmp_path / "o"]),
             "holds a 'qwen2' model but the artifact was compiled for 'llama'")


BAD_ARGUMENTS = [
    (["--ids", "1"], "-m, --ids and --logits are required"),
    (["--ids", "1,,2"], "--ids: '' is not a token id"),
    (["--ids", "1,-3"], "--ids: '-3' is not a token id"),
    (["--ids", "1,x"], "--ids: 'x' is not a token id"),
    (["--ids", "99999999999"], "is not a token id"),
    (["--ids", "1,100000"], "token 100000 (position 1) is not below n_vocab"),
    (["--ids", "1", "-t", "0"], "-t: '0' is not a thread count"),
    (["--ids", "1", "--frobnicate", "1"], "unknown option --frobnicate"),
    (["--ids"], "--ids needs a value"),
]


@pytest.mark.parametrize("args,message", BAD_ARGUMENTS, ids=[m for _, m in BAD_ARGUMENTS])
def test_bad_arguments_are_refused(runner, llama_f32_path, tmp_path, args, message):
    artifact, machine = runner
    rest = [] if "required" in message else ["-m", llama_f32_path]
    logits = [] if args == ["--ids"] else ["--logits", tmp_path / "o"]
    _refused(_run(artifact, machine, [*rest, *logits, *args]), message)


def test_unwritable_output_is_refused(runner, llama_f32_path, tmp_path):
    artifact, machine = runner
    _refused(_run(artifact, machine, ["-m", llama_f32_path, "--ids", "1", "--logits", tmp_path / "no" / "o.f32"]),
             "cannot write")
