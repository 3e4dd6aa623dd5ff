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


@pytest.mark.parametrize("target", ["ascend310b", "ascend910b", "adreno"])
def test_per_device_plans_never_overlap_and_are_aligned(target):
    from llmc.compiler.devices import list_profiles
    from llmc.compiler.driver import pipeline, run_pipeline
    profiles = list_profiles()
    graph = run_pipeline(load_arch(os.path.join(ARCHS, "gpt_oss.llmc")), None, pipeline(profiles[target], profiles))
    devices = {n.device for n in graph.nodes()}
    planned = set()
    for device in devices:
        plan = plan_memory(graph, device, profiles[device].alignment)
        assert plan.overlaps() == []
        assert all(graph.node(n).device == device for n in plan.slot_of)
        assert not planned & set(plan.slot_of)
        planned |= set(plan.slot_of)
        env = {"n_embd": 64, "n_head": 4, "n_head_kv": 2, "head_dim": 16, "n_expert": 4, "n_expert_used": 2,
               "n_ff_exp": 32, "n_vocab": 100, "n_batch": 7, "T": 7, "i": 0}
        assert plan.bytes(env) % plan.alignment == 0
        total = sum(max(int(s.eval(env)) for s in slot.sizes) for slot in plan.slots)
        assert total <= plan.bytes(env) < total + plan.alignment * len(plan.slots)
    inlined = {n.id for n in graph.nodes() if n.fused is not None and not n.fused.stored}
    assert inlined or target in ("cpu",) or "ascend" in target     # fusion ran where the backend generates
    values = {n.id for n in graph.nodes() if n.op is not Op.WEIGHT and n.op is not Op.RESHAPE} - inlined
    transfers_same = {n.id for n in graph.nodes() if n.op is Op.TRANSFER and
                      n.attrs["src"] == n.attrs["dst"]}
    assert planned == values - transfers_same
