"""Bind a graph to one GGUF file: hyperparameter values, the tensor behind every weight in every layer,
and a concrete shape check. Errors name both sides: the DSL location and the GGUF key or tensor.

`tensors` maps a GGUF tensor name to an object with .name, .ggml_type, .shape (numpy order) and .offset
(runtime/gguf_file.TensorInfo); ir/ does not import the runtime.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from . import expr as X
from .errors import BindError
from .graph import Graph
from .ops import LEAVES, Op, ShapeError, infer_shape
from .quant import WEIGHT_TYPES

SUPPORTED_WEIGHT_TYPES = tuple(WEIGHT_TYPES)
# Tensors that are not matmul weights (norm gains, biases, sinks, embeddings) may be any supported type.
CHECK_T = (1, 3)     # token counts used to check shapes that depend on T


@dataclass
class Binding:
    params: dict[str, Any]
    n_layer: int
    # weight node id -> one tensor per layer (layer weights) or a single entry; None = absent optional
    weights: dict[int, list[Any]] = field(default_factory=dict)



def gguf_name(template: str, arch: str, layer_var: str, layer: int | None) -> str:
    return template.replace("{arch}", arch).replace("{" + layer_var + "}", str(layer))


def bind(graph: Graph, metadata: Mapping[str, Any], tensors: Mapping[str, Any], file: str = "model.gguf",
         n_ctx: int | None = None) -> Binding:
    """n_ctx: the context the model is loaded with, which a weight's load-time choice may read; None (a
    compile) binds every such weight to its default tensor."""
    file_arch = metadata.get("general.architecture")
    if file_arch != graph.arch:
        raise BindError(f"{file} holds a {file_arch!r} model but {graph.source} describes {graph.arch!r}")
    params = bind_params(graph.params.values(), graph.arch, metadata, tensors, file)
    n_layer = int(graph.layer_count.eval(params)) if graph.layer_count is not None else 0
    if graph.layer_count is not None and n_layer < 1:
        raise BindError(f"{file}: the model has {n_layer} layers")
    binding = Binding(params, n_layer)
    for node in graph.weights():
        binding.weights[node.id] = _bind_weight(graph, node, params, n_layer, tensors, file, n_ctx)
    for layer in ([0, n_layer - 1] if n_layer else [0]):
        for t in CHECK_T:
            _check_shapes(graph, {**params, graph.layer_var: layer, "T": t})
    return binding


def bind_params(params, arch: str, metadata, tensors, file: str) -> dict[str, Any]:
    """Values of the hyperparameters, in declaration order, from one GGUF file's metadata and tensors."""
    env: dict[str, Any] = {}
    for p in params:
        if p.meta_key is not None:
            key = p.meta_key.replace("{arch}", arch)
            if key in metadata:
                value = metadata[key]
                if isinstance(value, (list, tuple)):
                    if not p.flags_as_period:
                        raise BindError(f"{file}: the metadata key {key!r} holds an array of {len(value)}; "
                                        f"parameter {p.name!r} reads one number or string", p.loc)
                    value = flags_period(value, metadata.get(f"{arch}.block_count", len(value)), key, file, p)
            elif p.default is not None:
                value = _eval(p.default, env, p)
            else:
                raise BindError(f"{file} lacks the metadata key {key!r} that parameter {p.name!r} needs", p.loc)
        elif p.tensor_dim is not None:
            tname, axis = p.tensor_dim
            if tname not in tensors:
                raise BindError(f"{file} lacks the tensor {tname!r} that parameter {p.name!r} reads", p.loc)
            ne = tuple(reversed(tensors[tname].shape))
            if not 0 <= axis < len(ne):
                raise BindError(f"tensor {tname!r} has {len(ne)} dims; ne axis {axis} does not exist", p.loc)
            value = ne[axis]
        else:
            value = _eval(p.expr, env, p)
        env[p.name] = value
    return env


def flags_period(flags, n_layer: int, key: str, file: str, p) -> int:
    """The period n of per-layer flags (nonzero = flagged) that flags layer i exactly when i % n < n - 1:
    how an older file writes the same pattern (llama.cpp's set_swa_pattern). Layers past the end of the
    array are not flagged, as llama.cpp reads it (load_swa_pattern); all flagged is n = n_layer + 1."""
    if any(isinstance(f, (float, str)) for f in flags):
        raise BindError(f"{file}: the per-layer flags in {key!r} (parameter {p.name!r}) are not bools or integers",
                        p.loc)
    flagged = [i < len(flags) and flags[i] != 0 for i in range(int(n_layer))]
    period = flagged.index(False) + 1 if False in flagged else len(flagged) + 1
    for i, flag in enumerate(flagged):
        if flag != (i % period < period - 1):
            raise BindError(f"{file}: the per-layer flags in {key!r} (parameter {p.name!r}) repeat no period n "
                            f"with layer i flagged when i % n < n - 1: layer {i} is "
                            f"{'flagged' if flag else 'not flagged'}", p.loc)
    return period


def _eval(e: X.Expr, env, p):
    try:
        return e.eval(env)
    except X.UnboundName as exc:
        raise BindError(f"parameter {p.name!r} uses {exc.args[0]!r} before it is defined", p.loc) from None


def chosen_template(node, env: Mapping[str, Any], n_ctx: int | None) -> str:
    """The tensor name template a weight binds: `gguf_then` when its load-time choice holds with this
    n_ctx (and hyperparameters, layer), else `gguf`."""
    test = node.attrs.get("gguf_if")
    if test is not None and n_ctx is not None and test.eval({**env, "n_ctx": n_ctx}):
        return node.attrs["gguf_then"]
    return node.attrs["gguf"]


def _bind_weight(graph: Graph, node, params, n_layer: int, tensors, file: str, n_ctx: int | None) -> list[Any]:
    layers = list(range(n_layer)) if node.region == "layer" else [None]
    bound = []
    for layer in layers:
        env = {**params, graph.layer_var: layer if layer is not None else 0}
        name = gguf_name(chosen_template(node, env, n_ctx), graph.arch, graph.layer_var, layer)
        info = tensors.get(name)
        if info is None and "fallback" in node.attrs:
            fb = graph.node(node.attrs["fallback"])
            name = gguf_name(fb.attrs["gguf"], graph.arch, graph.layer_var, layer)
            info = tensors.get(name)
        if info is None:
            if node.attrs.get("optional"):
                bound.append(None)
                continue
            raise BindError(f"{file} lacks the tensor {name!r} that weight {node.label!r} needs", node.loc)
        want = tuple(int(d.eval(env)) for d in node.shape)
        if tuple(info.shape) != want:
            raise BindError(f"tensor {name!r} in {file} has shape {tuple(info.shape)} (ne {tuple(reversed(info.shape))}),"
                            f" but {node.label!r} is declared {want} = "
                            f"({', '.join(str(d) for d in node.shape)})", node.loc)
        if info.ggml_type not in SUPPORTED_WEIGHT_TYPES:
            raise BindError(f"tensor {name!r} in {file} (offset {info.offset}) has type {info.ggml_type}, which "
                            f"llmc does not support; supported: {', '.join(SUPPORTED_WEIGHT_TYPES)}", node.loc)
        bound.append(info)
    return bound


def _check_shapes(graph: Graph, env: Mapping[str, Any]) -> None:
    for nid in graph.order():
        node = graph.node(nid)
        if node.op in LEAVES:
            continue
        shapes = [graph.node(i).shape if i is not None else None for i in graph.inputs(nid)]
        try:
            infer_shape(node.op, shapes, node.attrs, env)
        except ShapeError as exc:
            raise BindError(f"shape mismatch with this file's parameters: {exc}", node.loc) from None
