"""Compile a model for an OpenCL profile in the tests, until compile_model wires the OpenCL emitter.

Runs the driver's pass pipeline for the profile (partition_graph and insert_transfers place the nodes and
the copies), plans each device's memory, renders the schedule with an OpenCLEmitter per OpenCL device,
builds the library and writes the manifest (compiler.driver._manifest), so `llmc.load(out_dir, gguf)`
runs it. `carry_on_device` stands in for the one schedule hook the lead is asked to add
(OPENCL-REQUESTS.md): a carried value on a device is copied by that device's emitter, not by memcpy.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from llmc.codegen.c import build
from llmc.codegen.c.matmul import _ENV as C_ENV
from llmc.codegen.c.schedule import TYPE_IDS, ScheduleBuilder, emitter_for
from llmc.compiler import driver
from llmc.compiler.devices import DEVICES_DIR, list_profiles
from llmc.compiler.elaborate import load_arch
from llmc.compiler.fit_memory import facts_from_gguf
from llmc.compiler.passes.partition_graph import PartitionContext
from llmc.compiler.plan_memory import plan_memory

ARCHS = Path(__file__).resolve().parents[2] / "archs"


def carry_on_device(builder: ScheduleBuilder, schedule) -> None:
    """Replace the memcpy of each carried value that lives on an accelerator by its emitter's copy."""
    g = builder.graph
    for c in g.carried:
        device = builder.device_of(c.loop_in)
        if device == "cpu":
            continue
        emitter = builder.emitter(device)
        size = f"sizeof(float) * {builder.numel(g.node(c.loop_in).shape)}"
        for calls, comment, src in ((schedule.pre, f"carry {c.var} into the layer loop", c.init),
                                    (schedule.layer, f"carry {c.var} to the next layer", c.next)):
            for call in calls:
                if call.comment == comment:
                    call.lines = emitter.copy(builder, c.loop_in, src, size)


def compile_opencl(arch: str, profile_name: str, out_dir: str, gguf: str | None = None,
                   profiles_dir: str | os.PathLike = DEVICES_DIR):
    """Compile archs/<arch>.llmc for a profile; gguf informs placement (weight types) as `--gguf` does."""
    profiles = list_profiles(profiles_dir)
    profile = profiles[profile_name]
    arch_file = str(ARCHS / f"{arch}.llmc")
    graph = load_arch(arch_file)
    context = None
    if gguf:
        facts = facts_from_gguf(graph, gguf)
        context = PartitionContext(facts.weight_types, facts.params, True)
    graph = driver.run_pipeline(graph, None, driver.pipeline(profile, profiles, context))
    devices = sorted({n.device for n in graph.nodes() if n.device} | {"cpu"})
    plans = {d: plan_memory(graph, d, profiles[d].alignment) for d in devices}
    emitters = {d: emitter_for(profiles[d].codegen, d, profiles[d]) for d in devices if profiles[d].codegen != "c"}
    builder = ScheduleBuilder(graph, plans, None, emitters)
    schedule = builder.build()
    carry_on_device(builder, schedule)
    model_c = C_ENV.get_template("model.c.j2").render(s=schedule, type_ids=TYPE_IDS)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hashes = build.write_sources(out, model_c, schedule.sources)
    library, _ = build.build(out, hashes, link_flags=schedule.link_flags)
    manifest = driver._manifest(graph, plans["cpu"], profile_name, arch_file, None, hashes, library.name)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return graph, manifest
