"""The `reference` target: the numpy interpreter behind the Model interface."""
from __future__ import annotations

import numpy as np

from llmc.ir.bind import bind
from llmc.ir.graph import Graph
from llmc.ir.interpret import Interpreter

from .gguf_file import GGUFFile


class ReferenceEngine:
    def __init__(self, graph: Graph, gguf: GGUFFile, n_ctx: int | None = None):
        self.binding = bind(graph, gguf.metadata, gguf.tensors, gguf.path)
        ctx_key = f"{graph.arch}.context_length"
        self.n_ctx = int(n_ctx or min(int(gguf.metadata.get(ctx_key, 2048)), 4096))
        self.interp = Interpreter(graph, self.binding, lambda info: gguf.dequantize(info.name), self.n_ctx,
                                  load_raw=lambda info: gguf.raw(info.name))
        self.n_vocab = int(graph.node(graph.outputs["logits"]).shape[-1].eval(self.binding.params))

    def reset(self) -> None:
        self.interp.reset()

    def forward(self, tokens: np.ndarray, all_logits: bool) -> np.ndarray:
        logits = self.interp.forward(tokens)["logits"]
        return logits if all_logits else logits[-1:]
