"""The static memory plan never lets two live values share a slot, and the runtime aligns every slot."""
import os

import pytest

from llmc.compiler.elaborate import load_arch
from llmc.compiler.plan_memory import plan_memory
from llmc.ir.ops import Op

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "archs")


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt_oss"])
def test_no_two_live_values_share_a_slot(arch):
    graph = load_arch(os.path.join(ARCHS, f"{arch}.llmc"))
    plan = plan_memory(graph)
    assert plan.overlaps() == []
    values = [n.id for n in graph.nodes() if n.op is not Op.WEIGHT and n.id not in plan.alias_of]
    assert set(plan.slot_of) == set(values)
    assert len(plan.slots) < len(values) / 2        # lifetimes really are reused
    for c in graph.carried:                          # a carried value lives through the whole block
        start, end = plan.lifetime[c.loop_in]
        layer = [graph.order().index(n) for n in graph.order("layer")]
        assert (start, end) == (min(layer), max(layer))


def test_overlap_detector_finds_a_planted_conflict():
    graph = load_arch(os.path.join(ARCHS, "llama.llmc"))
    plan = plan_memory(graph)
    a, b = plan.slots[0].members[0], plan.slots[1].members[0]
    plan.slots[0].members.append(b)
    plan.lifetime[b] = plan.lifetime[a]
    assert plan.overlaps()
