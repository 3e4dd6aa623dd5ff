"""partition_graph: give every node a device, and every fallback its reason.

Placement, in order (after ggml_backend_sched's passes, docs/peers.md §1a, without its guessing):
  1. an op the target runs natively goes to the target;
  2. any other op goes to the target's fallback (then the fallback's fallback), the reason recorded;
     a weight type the profile refuses (`unsupported = "refuse"`) stops the compile with its message;
  3. a weight goes where its first user runs (it is read in place; never transferred);
  4. tokens and positions are host inputs: the CPU (the device with no fallback);
  5. a reshape goes where its input is (a view); a carried value's LOOP_IN where its next value is made.
node.placement holds the reason for every op node, node.fallback_from the target's name
for a node sent to a fallback device.

Without a GGUF file, an op whose support depends on its weight's type (a profile rule with `weights = [...]`)
cannot be placed yet. On a profile whose policy is `fallback`, whose fallback is the host and whose backend
generates both paths (decides_at_load), the node goes
to the target with node.load_choice set: the artifact generates both its device kernel and the host path
(through transfers), and the runtime chooses per layer from the file's types at load. On a `refuse`
profile the node stays on the target and the load refuses other types with the profile's message.

Needs: a verified graph, the target profile and every profile by name (for the fallback chain).
Guarantees: every node has a device that runs it (DeviceProfile.supports is true there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmc.compiler.devices import WEIGHT_INPUT
from llmc.ir.errors import LlmcError
from llmc.ir.graph import Graph, LoadChoice
from llmc.ir.ops import LEAVES, SPECS, Op


@dataclass(frozen=True)
class PartitionContext:
    """What a GGUF file tells placement: weight types per weight node, hyperparameter values."""

    weight_types: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    env: Mapping[str, Any] = field(default_factory=dict)
    known: bool = False  # a GGUF file was given


def native(graph: Graph, nid: int, profile, context: PartitionContext | None) -> tuple[bool, str]:
    """profile.supports for this node, with its present optional inputs and weight types."""
    context = context or PartitionContext()
    node = graph.node(nid)
    ins = graph.inputs(nid)
    names = [n.rstrip("?") for n in SPECS[node.op].inputs]
    present = [names[k] for k, src in enumerate(ins)
               if src is not None and k < len(names) and not _absent_weight(graph, src, context)]
    types = None
    if node.op in WEIGHT_INPUT and context.known:
        w = ins[WEIGHT_INPUT[node.op]]
        types = context.weight_types.get(w, ())
    return profile.supports(node, types, inputs=present, env=context.env)


def _absent_weight(graph: Graph, nid: int, context: PartitionContext) -> bool:
    """An optional weight the given GGUF file lacks (e.g. rope_freqs in a Llama 2 file): the op runs
    without that input. Without a file every declared input counts as present."""
    node = graph.node(nid)
    return (context.known and node.op is Op.WEIGHT and bool(node.attrs.get("optional"))
            and not context.weight_types.get(nid))


def partition_graph(
    graph: Graph, profile, profiles: Mapping[str, Any], context: PartitionContext | None = None,
    decides_at_load: Callable[[Any], bool] = lambda profile: True,
) -> Graph:
    """decides_at_load(profile): whether that profile's backend generates the two paths of a node placed
    at load (else such a node is placed now, on the assumed types, and a file with others is refused)."""
    graph = graph.copy()
    host = _host(profile, profiles)
    for nid in graph.order():
        node = graph.node(nid)
        if node.op in LEAVES or node.op is Op.RESHAPE:
            continue
        choice = _load_choice(graph, nid, profile, profiles, context) if decides_at_load(profile) else None
        if choice is not None:
            graph.update(nid, device=profile.name, load_choice=choice,
                         placement=f"decided at load: {profile.name} when the weight is {'/'.join(choice.types)}, "
                                   f"else {choice.fallback} ({choice.reason})")
            continue
        device, reason = _place(graph, nid, profile, profiles, context)
        graph.update(nid, device=device, placement=reason,
                     fallback_from=profile.name if device != profile.name else "")
    for nid in graph.order():
        node = graph.node(nid)
        if node.op in (Op.TOKENS, Op.POSITIONS):
            graph.update(nid, device=host)
        elif node.op is Op.WEIGHT:
            users = graph.users(nid)
            graph.update(nid, device=graph.node(users[0]).device if users else host)
    for c in graph.carried:
        graph.update(c.loop_in, device=_device(graph, c.next))
    for nid in graph.order():  # views follow their input, in order (chains of reshapes)
        if graph.node(nid).op is Op.RESHAPE:
            graph.update(nid, device=_device(graph, graph.inputs(nid)[0]))
    return graph


def _device(graph: Graph, nid: int) -> str:
    node = graph.node(nid)
    if node.op is Op.RESHAPE and not node.device:
        return _device(graph, graph.inputs(nid)[0])
    return node.device


def _host(profile, profiles) -> str:
    while profile.fallback:
        profile = profiles[profile.fallback]
    return profile.name


def _load_choice(graph: Graph, nid: int, profile, profiles, context) -> LoadChoice | None:
    """The deferred placement of a weight-typed node when no file is known (None: place it now)."""
    node = graph.node(nid)
    rule = profile.ops.get(node.op)
    if (context and context.known) or node.op not in WEIGHT_INPUT or rule is None or rule.weights is None:
        return None
    if profile.unsupported_weight != "fallback" or not profile.fallback:
        return None
    host = profiles[profile.fallback]
    if host.fallback:            # the host path is generated C: only a fallback that is the host itself
        return None
    ok, _ = native(graph, nid, profile, context)
    if not ok or not native(graph, nid, host, context)[0]:
        return None
    why = f"{node.op.value} on {profile.name} takes {'/'.join(rule.weights)} weights"
    return LoadChoice(tuple(rule.weights), host.name,
                      f"{why}; {profile.weight_message}" if profile.weight_message else why)


def _place(graph: Graph, nid: int, profile, profiles, context) -> tuple[str, str]:
    ok, why = native(graph, nid, profile, context)
    if ok:
        return profile.name, why or "native"
    node = graph.node(nid)
    if node.op in WEIGHT_INPUT and profile.unsupported_weight == "refuse" and context and context.known:
        w = graph.inputs(nid)[WEIGHT_INPUT[node.op]]
        rule = profile.ops.get(node.op)
        types = context.weight_types.get(w, ())
        if rule is not None and rule.native and rule.weights is not None and set(types) - set(rule.weights):
            raise LlmcError(
                f"{node.op.value} %{nid} ({graph.node(w).label}) on {profile.name}: {why}", node.loc
            )
    reasons = [why]
    current = profile
    while current.fallback:
        current = profiles[current.fallback]
        ok, fb_why = native(graph, nid, current, context)
        if ok:
            return current.name, "; then ".join(reasons)
        reasons.append(fb_why)
    raise LlmcError(f"no device runs {node.op.value} %{nid}: " + "; ".join(reasons), node.loc)
