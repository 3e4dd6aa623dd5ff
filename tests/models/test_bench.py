"""`llmc bench` against llama.cpp's llama-bench on the same file: both sides measured, ratios printed, and
the depth (-d) honoured on both. Tiny runs: this checks the plumbing, not the speed."""
import os
import subprocess
import sys

from llmc.compiler.driver import compile_model

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")


def test_bench_compares_with_llama_bench(smollm2_path, tmp_path):
    compile_model(os.path.join(ARCHS, "llama.llmc"), "c", str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "llmc.cli", "bench", str(tmp_path), "-m", smollm2_path,
                           "-p", "16", "-n", "4", "-d", "8", "--repeats", "1"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "llmc 2 threads at depth 8: prefill" in out and "decode" in out, out
    assert "[llama-bench, medians of 1, OMP_WAIT_POLICY" in out, out
    assert "ratio llmc / llama.cpp at depth 8: prefill" in out, out
