"""Run a bound graph with the numpy reference: prefill T tokens, then decode one at a time.

The KV cache (one K and one V per attention node and layer, (n_ctx, n_head_kv, head_dim) f16) lives in
the interpreter, so successive forward() calls continue the same sequence until reset().
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import reference as ref
from .bind import Binding
from .errors import LlmcError
from .graph import Graph
from .ops import LEAVES, POINTWISE, Op


@dataclass(frozen=True)
class WeightValue:
    data: np.ndarray        # dequantized f32, numpy order
    ggml_type: str
    raw: np.ndarray | None = None   # the GGUF bytes, for matmuls in ggml's vec_dot order


class Interpreter:
    def __init__(self, graph: Graph, binding: Binding, load: Callable[[Any], np.ndarray], n_ctx: int,
                 load_raw: Callable[[Any], np.ndarray] | None = None):
        """load(info) -> the weight dequantized (f32, numpy order); load_raw(info) -> its GGUF bytes, which
        let quantized matmuls follow ggml's summation order (reference.matmul)."""
        self.graph, self.binding, self.load, self.load_raw, self.n_ctx = graph, binding, load, load_raw, n_ctx
        self.order = {r: graph.order(r) for r in ("pre", "layer", "post")}
        self._weights: dict[str, WeightValue] = {}
        self.kv: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.n_past = 0

    def reset(self) -> None:
        self.kv.clear()
        self.n_past = 0

    def weight(self, nid: int, layer: int | None) -> WeightValue | None:
        infos = self.binding.weights[nid]
        info = infos[layer if self.graph.node(nid).region == "layer" else 0]
        if info is None:
            return None
        if info.name not in self._weights:
            raw = self.load_raw(info) if self.load_raw is not None else None
            self._weights[info.name] = WeightValue(self.load(info), info.ggml_type, raw)
        return self._weights[info.name]

    def forward(self, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """Run this step's tokens (T,) at positions n_past .. n_past+T-1; returns every declared output."""
        tokens = np.asarray(tokens, np.int32)
        n = len(tokens)
        if self.n_past + n > self.n_ctx:
            raise LlmcError(f"context full: {self.n_past} + {n} tokens exceed n_ctx = {self.n_ctx}")
        self.positions = np.arange(self.n_past, self.n_past + n, dtype=np.int32)
        self.tokens = tokens
        vals: dict[int, Any] = {}
        env = {**self.binding.params, "T": n}
        self._run("pre", vals, env, None)
        for layer in range(self.binding.n_layer):
            for c in self.graph.carried:
                vals[c.loop_in] = vals[c.init] if layer == 0 else vals[c.next]
            self._run("layer", vals, {**env, self.graph.layer_var: layer}, layer)
        self._run("post", vals, env, None)
        self.n_past += n
        return {name: vals[nid] for name, nid in self.graph.outputs.items()}

    def _run(self, region: str, vals: dict, env: dict, layer: int | None) -> None:
        for nid in self.order[region]:
            node = self.graph.node(nid)
            if node.op is Op.LOOP_IN:
                continue
            ins = [vals[i] if i is not None else None for i in self.graph.inputs(nid)]
            attrs = {k: (tuple(d.eval(env) for d in v) if isinstance(v, tuple) else v.eval(env))
                     for k, v in node.attrs.items()
                     if k not in ("gguf", "gguf_if", "gguf_then", "optional", "fallback", "var")}
            vals[nid] = _RUN[node.op](self, nid, layer, ins, attrs)


def _data(v):
    return v.data if isinstance(v, WeightValue) else v


def _matmul(it, nid, layer, ins, a):
    x, w, b = ins
    return ref.matmul(x, w.data, _data(b), w.ggml_type, w.raw)


def _moe_matmul(it, nid, layer, ins, a):
    x, w, sel, b = ins
    return ref.moe_matmul(x, w.data, sel, _data(b), w.ggml_type, w.raw)


def _pointwise(it, nid, layer, ins, a):
    name = it.graph.node(nid).op.value
    return getattr(ref, name)(*[_data(v) for v in ins], **a)


def _attention(it, nid, layer, ins, a):
    q, k, v, sinks = ins
    key = (nid, layer)
    if key not in it.kv:
        it.kv[key] = (np.zeros((it.n_ctx,) + k.shape[1:], np.float16), np.zeros((it.n_ctx,) + v.shape[1:], np.float16))
    kc, vc = it.kv[key]
    start, end = it.n_past, it.n_past + len(q)
    kc[start:end] = k.astype(np.float16)
    vc[start:end] = v.astype(np.float16)
    return ref.attention(q, kc[:end], vc[:end], it.positions, a["scale"], int(a["window"]), _data(sinks),
                         a.get("logit_cap", 0.0))


_RUN: dict[Op, Callable] = {
    Op.TOKENS: lambda it, nid, layer, ins, a: it.tokens,
    Op.POSITIONS: lambda it, nid, layer, ins, a: it.positions,
    Op.WEIGHT: lambda it, nid, layer, ins, a: it.weight(nid, layer),
    Op.EMBED: lambda it, nid, layer, ins, a: ref.embed(ins[0].data, ins[1]),
    Op.MATMUL: _matmul,
    Op.ROPE: lambda it, nid, layer, ins, a: ref.rope(ins[0], ins[1], freq_factors=_data(ins[2]), **a),
    Op.TOPK: lambda it, nid, layer, ins, a: ref.top_k(ins[0], int(a["k"])),
    Op.GATHER: lambda it, nid, layer, ins, a: ref.gather(ins[0], ins[1]),
    Op.MOE_MATMUL: _moe_matmul,
    Op.WEIGHTED_SUM: lambda it, nid, layer, ins, a: ref.weighted_sum(ins[0], ins[1]),
    Op.RESHAPE: lambda it, nid, layer, ins, a: _data(ins[0]).reshape(tuple(int(d) for d in a["shape"])),
    Op.TRANSFER: lambda it, nid, layer, ins, a: ins[0],
    Op.ATTENTION: _attention,
    **{op: _pointwise for op in POINTWISE},
}
assert set(_RUN) | LEAVES == set(Op), f"interpreter misses {set(Op) - set(_RUN) - LEAVES}"
