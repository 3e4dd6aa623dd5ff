"""`llmc compile`: DSL -> IR -> passes -> memory plan -> generated sources + manifest -> built library."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmc.ir import expr as X
from llmc.ir.bind import bind
from llmc.ir.graph import Graph, param_to_json, verify
from llmc.ir.ops import Op

from . import report
from .devices import DEVICES_DIR, DeviceProfile, get_profile, list_profiles
from .elaborate import load_arch
from .fit_memory import DEFAULT_N_BATCH, Fit, facts_from_gguf, fit_memory
from .passes.decompose_ops import decompose_ops
from .passes.eliminate_dead_code import eliminate_dead_code
from .passes.fuse_ops import fuse_ops
from .passes.fuse_pointwise import fuse_pointwise
from .passes.group_matmuls import group_matmuls
from .passes.infer_shapes import infer_shapes
from .passes.insert_transfers import insert_transfers
from .passes.partition_graph import PartitionContext, partition_graph
from .plan_memory import MemoryPlan, plan_memory

FORMAT_VERSION = 1
GROUPED_MATMULS = ("c", "opencl")       # codegen kinds that run a matmul group as one call
DECIDED_AT_LOAD = ("opencl",)           # codegen kinds that generate both paths of a node placed at load


@dataclass
class CompileResult:
    out_dir: Path
    graph: Graph                      # the partitioned graph
    plan: MemoryPlan                  # the plan of the generated C (every device in one address space)
    manifest: dict
    cached: bool
    seconds: float
    plans: dict[str, MemoryPlan] = field(default_factory=dict)    # per device
    fit: Fit | None = None
    report: str = ""


Pass = Callable[[Graph], Graph]


def pipeline(profile: DeviceProfile, profiles: dict[str, DeviceProfile],
             context: PartitionContext | None = None) -> list[tuple[str, Pass]]:
    """The passes, in order, for one target profile. `--dump-ir DIR` writes the graph after each."""
    return [
        ("infer_shapes", infer_shapes),
        ("eliminate_dead_code", eliminate_dead_code),
        ("fuse_ops", fuse_ops),
        ("decompose_ops", lambda g: decompose_ops(g, profile, context)),
        ("partition_graph", lambda g: partition_graph(g, profile, profiles, context,
                                                      lambda p: p.codegen in DECIDED_AT_LOAD)),
        ("insert_transfers", insert_transfers),
        ("group_matmuls", lambda g: group_matmuls(g, lambda dev: dev in profiles
                                                  and profiles[dev].codegen in GROUPED_MATMULS)),
        ("fuse_pointwise", lambda g: fuse_pointwise(g, lambda dev: dev in profiles and profiles[dev].pointwise)),
    ]


def run_pipeline(graph: Graph, dump_dir: str | None = None,
                 passes: list[tuple[str, Pass]] | None = None) -> Graph:
    """Run the passes (by default the cpu target's), verifying the graph after each."""
    if passes is None:
        profiles = list_profiles()
        passes = pipeline(profiles["cpu"], profiles)
    if dump_dir:
        os.makedirs(dump_dir, exist_ok=True)
        Path(dump_dir, "00-elaborated.txt").write_text(graph.summary() + "\n")
    for k, (name, fn) in enumerate(passes, start=1):
        graph = fn(graph)
        verify(graph)
        if dump_dir:
            Path(dump_dir, f"{k:02d}-{name}.txt").write_text(graph.summary() + "\n")
    return graph


def specialization(graph: Graph, gguf_path: str) -> dict:
    """The constants a --specialize build bakes in: hyperparameter values and weight types per weight."""
    from llmc.runtime.gguf_file import GGUFFile  # reading a GGUF file is the runtime's job
    gguf = GGUFFile(gguf_path)
    binding = bind(graph, gguf.metadata, gguf.tensors, gguf.path)
    return {"file": os.path.basename(gguf_path),
            "params": {k: v for k, v in binding.params.items() if isinstance(v, (int, float))},
            "weight_types": {str(nid): [t.ggml_type for t in infos if t is not None]
                             for nid, infos in binding.weights.items()}}


def compile_model(arch_file: str, target: str, out_dir: str, specialize: str | None = None,
                  dump_ir: str | None = None, gguf: str | None = None,
                  device_memory: dict[str, int] | None = None, n_batch: int = DEFAULT_N_BATCH,
                  profiles_dir: str | os.PathLike = DEVICES_DIR, cross: str | None = None,
                  arch_flags: str | None = None) -> CompileResult:
    """Compile for a device profile (`c` is the cpu). gguf (or specialize) is a weights file that informs
    placement (weight types, dims) and memory fitting; only specialize bakes it into the code.
    device_memory overrides the profiles' memory sizes (device -> bytes). cross builds the host code for
    another machine (codegen/c/build.py CROSS_TARGETS), arch_flags picks its CPU level."""
    from llmc.codegen.c import build, params
    tools = build.toolchain(cross, arch_flags)        # refuses an unknown or uninstalled target first
    profiles = list_profiles(profiles_dir)
    profile = get_profile(target, profiles_dir)
    t0 = time.perf_counter()
    graph = load_arch(arch_file)
    weights_file = specialize or gguf
    facts = facts_from_gguf(graph, weights_file) if weights_file else None
    context = PartitionContext(facts.weight_types, facts.params, True) if facts else None
    graph = run_pipeline(graph, dump_ir, pipeline(profile, profiles, context))
    devices = sorted({n.device for n in graph.nodes() if n.device} | {"cpu"})
    plans = {d: plan_memory(graph, d, profiles[d].alignment) for d in devices}
    fit = fit_memory(graph, profiles, facts, device_memory, n_batch) if facts else None
    spec = specialization(graph, specialize) if specialize else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    codegen, rendered = _render(graph, plans, spec, profiles, devices)
    model_c, extra_sources, link_flags, emitters = rendered
    plan = plans["cpu"] if not codegen["stand_in"] else plan_memory(_on_cpu(graph))
    extra_sources = {**extra_sources, params.SOURCE: params.render_params_c(graph, spec)}
    hashes = build.write_sources(out, model_c, extra_sources)
    library, cached = build.build(out, hashes, link_flags=link_flags, tools=tools)
    manifest = _manifest(graph, plan, target, arch_file, spec, hashes, library.name)
    manifest["build"] = {**tools.manifest(), "runner": build.RUNNER}
    manifest.update(_placement(graph, profile, profiles, plans, fit, device_memory or {}))
    manifest["codegen"] = codegen
    for device, emitter in emitters.items():
        if hasattr(emitter, "manifest"):
            manifest.setdefault("accelerators", {})[device] = emitter.manifest()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out / "graph.html").write_text(report.graph_html(manifest))
    return CompileResult(out, graph, plan, manifest, cached, time.perf_counter() - t0, plans, fit,
                         report.summary(manifest))


def _render(graph: Graph, plans: dict, spec, profiles: dict, devices: list[str]):
    """Generate the schedule with each device's own code generator. A device whose generator cannot serve
    this model (e.g. AscendC whole models on 310P, which lacks DataCopyPad) has its nodes generated as C
    on the host instead, and the manifest and report say so."""
    from llmc.codegen.ascendc.kernels import AscendCodegenError
    from llmc.codegen.c import schedule
    from llmc.codegen.core.schedule import emitter_for
    try:
        emitters = {d: emitter_for(profiles[d].codegen, d, profiles[d])
                    for d in devices if profiles[d].codegen != "c"}
        rendered = schedule.render_model_c(graph, plans, spec, emitters)
        return {"stand_in": None, "kinds": {d: profiles[d].codegen for d in devices}}, (*rendered, emitters)
    except AscendCodegenError as exc:
        reason = str(exc)
    stand_in = _on_cpu(graph)
    rendered = schedule.render_model_c(stand_in, plan_memory(stand_in), spec)
    return {"stand_in": reason, "kinds": {d: "c" for d in devices}}, (*rendered, {})


def _on_cpu(graph: Graph) -> Graph:
    """The graph as the C target sees it while C stands in for every device: one device, no copies."""
    cpu = graph.copy()
    for n in list(cpu.nodes()):
        attrs = {**n.attrs, "src": X.Num("cpu"), "dst": X.Num("cpu")} if n.op is Op.TRANSFER else n.attrs
        cpu.update(n.id, device="cpu", attrs=attrs)
    return cpu


def _placement(graph: Graph, profile: DeviceProfile, profiles, plans, fit: Fit | None, memory) -> dict:
    """The manifest's placement facts: per-device profile and memory, the fit, and per-node reasons."""
    devices = {}
    for d, plan in plans.items():
        p = profiles[d]
        devices[d] = {"description": p.description, "codegen": p.codegen, "fallback": p.fallback,
                      "memory_bytes": memory.get(d, p.memory_bytes), "memory_verified": p.memory_verified,
                      "shared_with_fallback": p.shared_with_fallback, "alignment": p.alignment,
                      "activation_slots": len(plan.slots),
                      "slots": [[str(s) for s in slot.sizes] for slot in plan.slots]}
    if profile.name not in devices:
        p = profile
        devices[p.name] = {"description": p.description, "codegen": p.codegen, "fallback": p.fallback,
                           "memory_bytes": memory.get(p.name, p.memory_bytes), "memory_verified": p.memory_verified,
                           "shared_with_fallback": p.shared_with_fallback, "alignment": p.alignment,
                           "activation_slots": 0, "slots": []}
    fit_json = None
    if fit is not None:
        fit_json = {"max_n_ctx": fit.max_n_ctx, "limit": fit.limit, "n_batch": fit.n_batch,
                    "n_ctx_train": fit.n_ctx_train, "per_pool_max": fit.per_pool_max,
                    "pools": [{"name": n, "devices": m, "bytes": c} for n, m, c in fit.pools],
                    "uses": {d: {"weights": u.weights, "activations": u.activations,
                                 "kv_per_token": u.kv_per_token} for d, u in fit.uses.items()}}
    transfers = [{"id": n.id, "value": graph.inputs(n.id)[0], "src": n.attrs["src"].value,
                  "dst": n.attrs["dst"].value, "region": n.region} for n in graph.nodes() if n.op is Op.TRANSFER]
    return {"device_profile": profile.name, "devices": devices, "fit": fit_json, "transfers": transfers}


def _manifest(graph: Graph, plan: MemoryPlan, target: str, arch_file: str, spec, hashes, library: str) -> dict:
    weights = [{"name": n.label, "gguf": n.attrs["gguf"], "shape": [str(d) for d in n.shape],
                "optional": bool(n.attrs.get("optional")), "per_layer": n.region == "layer",
                "fallback": graph.node(n.attrs["fallback"]).attrs["gguf"] if "fallback" in n.attrs else None,
                "chosen_at_load": n.attrs.get("gguf_then")}
               for n in graph.weights()]
    return {
        "format_version": FORMAT_VERSION,
        "arch": graph.arch,
        "target": target,
        "source": os.path.basename(arch_file),
        "source_sha256": hashlib.sha256(Path(arch_file).read_bytes()).hexdigest(),
        "sources_sha256": hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest(),
        "library": library,
        "params": [param_to_json(p) for p in graph.params.values()],
        "gguf_keys": sorted({p.meta_key.replace("{arch}", graph.arch) for p in graph.params.values() if p.meta_key}),
        "weights": weights,
        "specialized": spec,
        "ops": [_op_json(graph, n) for n in graph.nodes()],
        "memory_plan": {"alignment": 64, "batch_symbol": "n_batch",
                        "slots": [{"bytes": [str(s) for s in slot.sizes], "values": slot.members}
                                  for slot in plan.slots]},
    }


def _op_json(graph: Graph, n) -> dict:
    """One node for the manifest: where it runs and why (partition_graph and decompose_ops wrote why)."""
    why = n.placement
    j = {"id": n.id, "op": n.op.value, "label": n.label, "region": n.region,
         "shape": [str(d) for d in n.shape], "loc": str(n.loc) if n.loc else None,
         "device": n.device or "cpu", "inputs": [i for i in graph.inputs(n.id) if i is not None],
         "fallback": why if n.fallback_from else "",
         "placement_note": why if why.startswith("assumed") else "",
         "decomposed_from": n.decomposed_from}
    if n.op is Op.TRANSFER:
        j["transfer"] = {"src": n.attrs["src"].value, "dst": n.attrs["dst"].value}
    if n.fused is not None:
        j["fused"] = {"group": n.fused.group, "stored": n.fused.stored}
    if n.load_choice is not None:
        j["load_choice"] = {"types": list(n.load_choice.types), "fallback": n.load_choice.fallback,
                            "reason": n.load_choice.reason}
    return j


def compile_to_temp(arch_file: str, target: str, gguf_path: str | None = None) -> str:
    """`llmc.load(arch, gguf, target=...)`: compile into a temporary artifact; the file informs placement."""
    out = tempfile.mkdtemp(prefix=f"llmc-{target}-")
    compile_model(arch_file, target, out, gguf=gguf_path)
    return out
