"""model.c: the shared host schedule (codegen/core/schedule.py) rendered as C by templates/model.c.j2."""
from __future__ import annotations

from typing import Any

from llmc.codegen.core.schedule import TYPE_IDS, Emitter, ScheduleBuilder
from llmc.compiler.plan_memory import MemoryPlan
from llmc.ir.graph import Graph

from .matmul import _ENV


def render_model_c(graph: Graph, plans: dict[str, MemoryPlan] | MemoryPlan, specialized: dict[str, Any] | None = None,
                   emitters: dict[str, Emitter] | None = None) -> tuple[str, dict[str, str], list[str]]:
    """model.c, any extra source files the accelerator emitters need, and extra link flags."""
    if isinstance(plans, MemoryPlan):
        plans = {"cpu": plans}
    schedule = ScheduleBuilder(graph, plans, specialized, emitters).build()
    model_c = _ENV.get_template("model.c.j2").render(s=schedule, type_ids=TYPE_IDS)
    return model_c, schedule.sources, schedule.link_flags
