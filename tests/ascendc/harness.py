"""Compile a model for an Ascend profile through the AscendC emitter, the way compile_model will once the lead
wires it in: passes for the profile, one memory plan per device, render_model_c with the emitters, the C build,
a manifest like compiler/driver.py's. Returns the artifact directory and the emitter."""
from __future__ import annotations

import json
import os
from pathlib import Path

from llmc.codegen.ascendc.emit import AscendCEmitter
from llmc.codegen.c import build, schedule
from llmc.compiler import driver
from llmc.compiler.devices import get_profile, list_profiles
from llmc.compiler.elaborate import load_arch
from llmc.compiler.plan_memory import plan_memory

ARCHS = Path(__file__).resolve().parents[2] / "archs"


def compile_for_ascend(arch: str, target: str, out_dir: str | os.PathLike) -> tuple[Path, AscendCEmitter, dict]:
    profiles = list_profiles()
    profile = get_profile(target)
    arch_file = str(ARCHS / f"{arch}.llmc")
    graph = driver.run_pipeline(load_arch(arch_file), None, driver.pipeline(profile, profiles, None))
    devices = sorted({n.device for n in graph.nodes() if n.device} | {"cpu"})
    plans = {d: plan_memory(graph, d, profiles[d].alignment) for d in devices}
    emitters = {d: schedule.emitter_for(profiles[d].codegen, d, profiles[d]) for d in devices if d != "cpu"}
    model_c, extra, link_flags = schedule.render_model_c(graph, plans, None, emitters)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hashes = build.write_sources(out, model_c, extra)
    library, _ = build.build(out, hashes, link_flags=link_flags)
    manifest = driver._manifest(graph, plans["cpu"], target, arch_file, None, hashes, library.name)
    manifest["ascendc"] = emitters[target].manifest()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return out, emitters[target], manifest
