"""The `reference` target: the numpy interpreter behind the Model interface."""
from __future__ import annotations

import os

import numpy as np

from llmc.ir.bind import bind
from llmc.ir.graph import Graph
from llmc.ir.interpret import Interpreter

from .context_size import context_size
from .gguf_file import GGUFFile


class ReferenceEngine:
    def __init__(self, graph: Graph, gguf: GGUFFile, n_ctx: int | None = None):
        bound = [n.attrs[k] for n in graph.weights() for k in ("gguf", "gguf_then") if k in n.attrs]
        self.n_ctx = context_size(graph.arch, gguf.metadata, gguf.tensors, bound, n_ctx, gguf.path,
                                  os.path.basename(graph.source))
        self.binding = bind(graph, gguf.metadata, gguf.tensors, gguf.path, n_ctx=self.n_ctx)
        self.interp = Interpreter(graph, self.binding, lambda info: gguf.dequantize(info.name), self.n_ctx,
                                  load_raw=lambda info: gguf.raw(info.name))
        self.n_vocab = int(graph.node(graph.outputs["logits"]).shape[-1].eval(self.binding.params))

    def reset(self) -> None:
        self.interp.reset()

    def forward(self, tokens: np.ndarray, all_logits: bool) -> np.ndarray:
        logits = self.interp.forward(tokens)["logits"]
        return logits if all_logits else logits[-1:]
