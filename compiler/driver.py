"""`llmc compile`: DSL -> IR -> passes -> memory plan -> generated sources + manifest -> built library."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from llmc.ir.bind import bind
from llmc.ir.errors import LlmcError
from llmc.ir.graph import Graph, param_to_json, verify

from .elaborate import load_arch
from .plan_memory import MemoryPlan, plan_memory

FORMAT_VERSION = 1
TARGETS = ("c",)


@dataclass
class CompileResult:
    out_dir: Path
    graph: Graph
    plan: MemoryPlan
    manifest: dict
    cached: bool
    seconds: float


# The pass pipeline: one ordered list of (name, IR -> IR). `--dump-ir DIR` writes the graph after each.
PIPELINE: list[tuple[str, Callable[[Graph], Graph]]] = []


def run_pipeline(graph: Graph, dump_dir: str | None = None) -> Graph:
    if dump_dir:
        os.makedirs(dump_dir, exist_ok=True)
        Path(dump_dir, "00-elaborated.txt").write_text(graph.summary() + "\n")
    for k, (name, fn) in enumerate(PIPELINE, start=1):
        graph = fn(graph)
        verify(graph)
        if dump_dir:
            Path(dump_dir, f"{k:02d}-{name}.txt").write_text(graph.summary() + "\n")
    return graph


def specialization(graph: Graph, gguf_path: str) -> dict:
    """The constants a --specialize build bakes in: hyperparameter values and weight types per weight."""
    from llmc.runtime.gguf_file import GGUFFile    # reading a GGUF file is the runtime's job
    gguf = GGUFFile(gguf_path)
    binding = bind(graph, gguf.metadata, gguf.tensors, gguf.path)
    return {"file": os.path.basename(gguf_path),
            "params": {k: v for k, v in binding.params.items() if isinstance(v, (int, float))},
            "weight_types": {str(nid): [t.ggml_type for t in infos if t is not None]
                             for nid, infos in binding.weights.items()}}


def compile_model(arch_file: str, target: str, out_dir: str, specialize: str | None = None,
                  dump_ir: str | None = None) -> CompileResult:
    if target not in TARGETS:
        raise LlmcError(f"unknown target {target!r}; known targets: {', '.join(TARGETS)}")
    t0 = time.perf_counter()
    graph = run_pipeline(load_arch(arch_file), dump_ir)
    plan = plan_memory(graph)
    spec = specialization(graph, specialize) if specialize else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from llmc.codegen.c import build, schedule
    model_c, extra_sources, link_flags = schedule.render_model_c(graph, plan, spec)
    hashes = build.write_sources(out, model_c, extra_sources)
    library, cached = build.build(out, hashes, link_flags=link_flags)
    manifest = _manifest(graph, plan, target, arch_file, spec, hashes, library.name)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return CompileResult(out, graph, plan, manifest, cached, time.perf_counter() - t0)


def _manifest(graph: Graph, plan: MemoryPlan, target: str, arch_file: str, spec, hashes, library: str) -> dict:
    weights = [{"name": n.label, "gguf": n.attrs["gguf"], "shape": [str(d) for d in n.shape],
                "optional": bool(n.attrs.get("optional")), "per_layer": n.region == "layer",
                "fallback": graph.node(n.attrs["fallback"]).attrs["gguf"] if "fallback" in n.attrs else None}
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
        "ops": [{"id": n.id, "op": n.op.value, "label": n.label, "region": n.region,
                 "shape": [str(d) for d in n.shape], "loc": str(n.loc) if n.loc else None,
                 "device": n.device or "cpu"} for n in graph.nodes()],
        "memory_plan": {"alignment": 64, "batch_symbol": "n_batch",
                        "slots": [{"bytes": [str(s) for s in slot.sizes], "values": slot.members}
                                  for slot in plan.slots]},
    }


def compile_to_temp(arch_file: str, target: str, gguf_path: str | None = None) -> str:
    out = tempfile.mkdtemp(prefix=f"llmc-{target}-")
    compile_model(arch_file, target, out)
    return out
