"""llmc: a declarative graph compiler for large language models.

    model = llmc.load("archs/llama.llmc", "SmolLM2-135M-Instruct.Q4_1.gguf", target="reference")
    model.generate("The capital of France is", max_tokens=16)
"""
from __future__ import annotations

import os

# In a checkout, ir/, compiler/, codegen/, runtime/ and archs/ sit beside this folder (the design card's
# layout) and are installed as llmc.ir, llmc.compiler, ... by pyproject's package-dir. Searching the
# checkout's top folder for llmc's subpackages makes `import llmc` work there without an install.
_checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if not os.path.isdir(os.path.join(os.path.dirname(__file__), "ir")) and \
        os.path.isfile(os.path.join(_checkout, "ir", "ops.py")):
    __path__.append(_checkout)

from llmc.ir.errors import BindError, DslError, LlmcError

__all__ = ["load", "arch_path", "LlmcError", "DslError", "BindError"]


def arch_path(name_or_path: str) -> str:
    """`llama` -> the packaged archs/llama.llmc; a path is returned as it is."""
    if os.path.exists(name_or_path) or name_or_path.endswith(".llmc") or os.sep in name_or_path:
        return name_or_path
    import llmc.archs
    packaged = os.path.join(os.path.dirname(llmc.archs.__file__), f"{name_or_path.replace('-', '_')}.llmc")
    if os.path.exists(packaged):
        return packaged
    raise LlmcError(f"unknown architecture {name_or_path!r}: give a .llmc file or one of "
                    f"{', '.join(sorted(f[:-5] for f in os.listdir(os.path.dirname(packaged)) if f.endswith('.llmc')))}")


def load(arch_or_artifact: str, gguf_path: str, target: str = "reference", n_ctx: int | None = None,
         chat_template: str | None = None, **options):
    """A Model (logits, tokenize, detokenize, generate, chat) for a GGUF file.

    arch_or_artifact is an architecture (.llmc file or packaged name) for target="reference", or an
    artifact directory written by `llmc compile` for a compiled target. chat_template overrides the file's
    tokenizer.chat_template: a built-in name (chatml, llama3, gemma) or a template file. Options of a
    compiled target: n_threads, n_batch, n_seq (sequences with their own KV cache, for the server)."""
    from llmc.runtime.chat_template import template_for
    from llmc.runtime.gguf_file import GGUFFile
    from llmc.runtime.model import Model
    from llmc.runtime.tokenizer import Tokenizer

    if os.path.isdir(arch_or_artifact):
        from llmc.runtime.artifact import load_engine, read_gguf
        gguf = read_gguf(arch_or_artifact, gguf_path)      # the artifact's C reader: header only, in bulk
        engine = load_engine(arch_or_artifact, gguf, n_ctx=n_ctx, **options)
        target = engine.target
    elif target == "reference":
        from llmc.compiler.elaborate import load_arch
        from llmc.runtime.reference_engine import ReferenceEngine
        gguf = GGUFFile(gguf_path)
        engine = ReferenceEngine(load_arch(arch_path(arch_or_artifact)), gguf, n_ctx=n_ctx)
    else:
        from llmc.compiler.driver import compile_to_temp
        from llmc.runtime.artifact import load_engine, read_gguf
        artifact = compile_to_temp(arch_path(arch_or_artifact), target, gguf_path=gguf_path)
        gguf = read_gguf(artifact, gguf_path)
        engine = load_engine(artifact, gguf, n_ctx=n_ctx, **options)
    return Model(engine, Tokenizer.from_metadata(gguf.metadata), target,
                 chat_template=template_for(gguf.metadata, chat_template))
