"""Fit a model to each device's memory: weights + KV cache + activations, and the largest n_ctx that fits.

Works from facts, not from a loaded model: hyperparameter values and the bytes of every weight tensor,
either read from a GGUF file (`facts_from_gguf`) or described (`facts_from_types`, e.g. a 0.5B qwen2
nobody here can download). Everything but the KV cache is fixed; the KV cache grows linearly with n_ctx
(f16 K and V per layer, as the runtime allocates it), so the largest n_ctx per memory pool is one
division. A device whose profile says `shared_with_fallback` (a board's RAM, Ascend 310B, Adreno) shares
one pool with its fallback device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmc.ir.bind import bind
from llmc.ir.errors import LlmcError
from llmc.ir.graph import Graph
from llmc.ir.ops import Op, numel
from llmc.ir.quant import row_bytes

from .plan_memory import plan_memory

KV_BYTES = 2  # the KV cache is f16
DEFAULT_N_BATCH = 512


@dataclass(frozen=True)
class ModelFacts:
    params: Mapping[str, object]  # hyperparameter values
    weight_bytes: Mapping[int, int]  # weight node -> bytes over all layers
    weight_types: Mapping[int, tuple[str, ...]]  # weight node -> GGUF types (all layers)
    n_ctx_train: int | None = None
    file: str = ""


@dataclass
class DeviceUse:
    device: str
    weights: int = 0
    kv_per_token: int = 0
    activations: int = 0

    def total(self, n_ctx: int) -> int:
        return self.weights + self.activations + self.kv_per_token * n_ctx


@dataclass
class Fit:
    uses: dict[str, DeviceUse]
    pools: list[tuple[str, list[str], int]]  # (name, devices, capacity bytes)
    max_n_ctx: int  # over all pools, capped at n_ctx_train
    limit: str  # what limits it
    n_batch: int
    n_ctx_train: int | None = None
    per_pool_max: dict[str, int] = field(default_factory=dict)


def facts_from_gguf(graph: Graph, path: str) -> ModelFacts:
    from llmc.runtime.gguf_file import GGUFFile  # reading a GGUF file is the runtime's job

    gguf = GGUFFile(path)
    binding = bind(graph, gguf.metadata, gguf.tensors, gguf.path)
    sizes = {nid: sum(t.nbytes for t in infos if t is not None) for nid, infos in binding.weights.items()}
    types = {
        nid: tuple(t.ggml_type for t in infos if t is not None) for nid, infos in binding.weights.items()
    }
    ctx = gguf.metadata.get(f"{graph.arch}.context_length")
    return ModelFacts(binding.params, sizes, types, int(ctx) if ctx else None, gguf.path)


def facts_from_types(
    graph: Graph,
    params: Mapping[str, object],
    types: Mapping[str, str],
    default_type: str = "F32",
    n_ctx_train: int | None = None,
) -> ModelFacts:
    """Facts for a described model: params (derived ones are computed) and a GGUF type per weight label."""
    env: dict[str, object] = {}
    for p in graph.params.values():  # given values, else the DSL's defaults and formulas
        if p.name in params:
            env[p.name] = params[p.name]
        elif p.expr is not None or p.default is not None:
            env[p.name] = (p.expr if p.expr is not None else p.default).eval(env)
        else:
            raise LlmcError(f"the model description lacks {p.name!r}", p.loc)
    n_layer = int(graph.layer_count.eval(env)) if graph.layer_count is not None else 0
    sizes, kinds = {}, {}
    for w in graph.weights():
        kind = types.get(w.label, default_type)
        if w.attrs.get("optional") and w.label not in types:
            continue
        shape = [int(d.eval({**env, graph.layer_var: 0})) for d in w.shape]
        rows = 1
        for d in shape[:-1]:
            rows *= d
        layers = n_layer if w.region == "layer" else 1
        sizes[w.id] = row_bytes(kind, shape[-1]) * rows * layers
        kinds[w.id] = (kind,) * layers
    tied = [w for w in graph.weights() if "fallback" in w.attrs and w.label not in types]
    for w in tied:  # a tied head reads its fallback: no bytes of its own
        sizes[w.id], kinds[w.id] = 0, kinds.get(w.attrs["fallback"], (default_type,))
    return ModelFacts(env, sizes, kinds, n_ctx_train, "description")


def fit_memory(
    graph: Graph,
    profiles: Mapping[str, object],
    facts: ModelFacts,
    memory: Mapping[str, int] | None = None,
    n_batch: int = DEFAULT_N_BATCH,
) -> Fit:
    """memory: device -> bytes, overriding the profiles' sizes (`--device-memory`)."""
    memory = dict(memory or {})
    env = {**facts.params, "n_batch": n_batch, "T": n_batch}
    devices = sorted({n.device or "cpu" for n in graph.nodes()})
    uses = {d: DeviceUse(d) for d in devices}
    n_layer = int(graph.layer_count.eval(facts.params)) if graph.layer_count is not None else 1
    for w in graph.weights():
        uses[w.device or "cpu"].weights += facts.weight_bytes.get(w.id, 0)
    for n in graph.nodes():
        if n.op is Op.ATTENTION:
            k = graph.node(graph.inputs(n.id)[1])
            row = numel(k.shape[1:], {**env, graph.layer_var: 0})
            layers = n_layer if n.region == "layer" else 1
            uses[n.device or "cpu"].kv_per_token += 2 * KV_BYTES * row * layers
    for d in devices:
        align = profiles[d].alignment if d in profiles else 64
        uses[d].activations = plan_memory(graph, d, align).bytes({**env, graph.layer_var: 0})
    pools = _pools(devices, profiles, memory)
    best, limit, per_pool = None, "", {}
    for name, members, cap in pools:
        fixed = sum(uses[d].weights + uses[d].activations for d in members)
        per_token = sum(uses[d].kv_per_token for d in members)
        if fixed >= cap:
            parts = ", ".join(
                f"{d}: weights {fmt_bytes(uses[d].weights)}, activations {fmt_bytes(uses[d].activations)}"
                for d in members
            )
            raise LlmcError(
                f"{facts.file or 'the model'} does not fit {name} ({fmt_bytes(cap)}): weights and "
                f"activations alone take {fmt_bytes(fixed)} ({parts}); give more with "
                "--device-memory, use a smaller quantization, or place less there"
            )
        if not per_token:
            continue  # no KV cache there: n_ctx is not limited by it
        n = (cap - fixed) // per_token
        if n < 1:
            raise LlmcError(f"{facts.file or 'the model'}: no room for even one token of KV cache on {name}")
        per_pool[name] = n
        if best is None or n < best:
            best, limit = n, name
    if best is None:
        best, limit = facts.n_ctx_train or 0, "the model's trained context length"
    if facts.n_ctx_train and best > facts.n_ctx_train:
        best, limit = facts.n_ctx_train, "the model's trained context length"
    return Fit(uses, pools, best, limit, n_batch, facts.n_ctx_train, per_pool)


def _pools(devices, profiles, memory) -> list[tuple[str, list[str], int]]:
    pools, seen = [], set()
    for d in devices:
        if d in seen:
            continue
        prof = profiles[d]
        members = [d]
        if prof.shared_with_fallback and prof.fallback:
            members.append(prof.fallback)
        for other in devices:  # devices sharing d's pool through their own profile
            p = profiles[other]
            if other not in members and p.shared_with_fallback and p.fallback == d:
                members.append(other)
        members = [m for m in members if m in devices] or [d]
        seen |= set(members)
        owner = next((m for m in members if profiles[m].shared_with_fallback), d)
        cap = memory.get(owner, profiles[owner].memory_bytes)
        name = (
            owner
            if len(members) == 1
            else f"{owner} (shared with {', '.join(m for m in members if m != owner)})"
        )
        pools.append((name, members, cap))
    return pools


def fmt_bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
