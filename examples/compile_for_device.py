"""Compile an architecture for an Ascend 310B board and see where every op runs, and how much context fits.

    python examples/compile_for_device.py [ARCH GGUF] [--target ascend310b]

With no arguments: the llama architecture with the default model (SmolLM2-135M-Instruct Q4_1). For a
Qwen2 model: `python examples/compile_for_device.py qwen2 qwen2.5-0.5b-instruct-q4_0.gguf`.
The compiler decides placement from the file's weight types (310B's AscendC matmuls take Q4_0 and Q8_0,
so SmolLM2's Q4_1 matmuls stay on the CPU, each with its reason) and fits the context to the board's
memory, which the NPU shares with the CPU.
"""
import argparse
import tempfile

import llmc
from llmc.compiler import report
from llmc.compiler.driver import compile_model
from llmc.fetch import smollm2

parser = argparse.ArgumentParser()
parser.add_argument("arch", nargs="?", default="llama")
parser.add_argument("gguf", nargs="?")
parser.add_argument("--target", default="ascend310b")
args = parser.parse_args()

with tempfile.TemporaryDirectory() as artifact:
    result = compile_model(llmc.arch_path(args.arch), args.target, artifact, gguf=args.gguf or smollm2())
    manifest = result.manifest
    print(result.report)                      # the compile report: placement counts, fallbacks, memory
    print()
    print(report.explain(manifest))           # every node: its device and why
    fit = manifest["fit"]
    print(f"\nlargest context that fits {args.target}: {fit['max_n_ctx']} tokens ({fit['limit']})")
