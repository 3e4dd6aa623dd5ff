"""The report a person reads: `llmc compile` prints the summary, `llmc explain` the per-node table from
the manifest alone, `llmc targets` the profiles; graph.html draws one lane per device."""

from pathlib import Path

from llmc.cli import main
from tests.compiler.test_driver import ARCHS


def test_compile_explain_and_picture(tmp_path, capsys, qwen2_q8_path):
    out = str(tmp_path / "a")
    assert (
        main(
            [
                "compile",
                f"{ARCHS}/qwen2.llmc",
                "--target",
                "ascend310b",
                "-o",
                out,
                "--gguf",
                qwen2_q8_path,
                "--device-memory",
                "8GiB",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "qwen2 on ascend310b" in text and "nodes: ascend310b" in text and "transfers" in text
    assert "fallback" not in text and "max n_ctx: 4096" in text        # every op of qwen2 runs on the NPU
    assert main(["explain", out]) == 0
    table = capsys.readouterr().out
    assert "decomposed from rms_norm" in table
    assert any(line.split()[2:3] == ["attention"] and " ascend310b " in line for line in table.splitlines())
    page = Path(out, "graph.html").read_text()
    assert page.count("<svg") == 1 and ">ascend310b</text>" in page and ">cpu</text>" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_device_memory_too_small_refuses_without_traceback(tmp_path, capsys, qwen2_q8_path):
    code = main(
        [
            "compile",
            f"{ARCHS}/qwen2.llmc",
            "--target",
            "ascend910b",
            "-o",
            str(tmp_path),
            "--gguf",
            qwen2_q8_path,
            "--device-memory",
            "64KiB",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "does not fit ascend910b (64.0 KiB)" in err and "Traceback" not in err


def test_targets_lists_every_profile(capsys):
    assert main(["targets"]) == 0
    text = capsys.readouterr().out
    for name in ("cpu", "opencl", "adreno", "ascend310b", "ascend310p", "ascend910b"):
        assert f"\n{name}: " in "\n" + text
    b310 = text.split("ascend310b:")[1].split("ascend310p:")[0]
    assert "decomposed: rms_norm" in b310 and "matmul[Q4_0/Q8_0]" in b310


def test_fused_groups_are_shown(tmp_path, capsys):
    """A fused pointwise group is named in the summary, in `llmc explain` and framed in graph.html."""
    out = str(tmp_path / "llama")
    assert main(["compile", f"{ARCHS}/llama.llmc", "-o", out]) == 0
    assert "fused on cpu: add + rms_norm_mul -> one kernel at %" in capsys.readouterr().out
    assert main(["explain", out]) == 0
    table = capsys.readouterr().out
    assert "fused into %" in table and "runs its fused group's kernel" in table
    assert "fused: one generated kernel at %" in (Path(out) / "graph.html").read_text()
