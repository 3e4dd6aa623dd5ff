"""partition_graph: every node lands on a device that runs it, with the reason for every fallback."""

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st
from llmc.compiler.devices import UNPLACED, OpRule, get_profile, list_profiles
from llmc.compiler.elaborate import load_arch
from llmc.compiler.passes.decompose_ops import decompose_ops
from llmc.compiler.passes.fuse_ops import fuse_ops
from llmc.compiler.passes.insert_transfers import insert_transfers
from llmc.compiler.passes.partition_graph import PartitionContext, native, partition_graph
from llmc.ir.graph import verify
from llmc.ir.ops import Op

from tests.compiler.test_driver import ARCHS

PLACEABLE = [op for op in Op if op not in UNPLACED]
TYPES = ["F32", "Q8_0", "Q4_0", "MXFP4"]


def _graph(arch):
    return fuse_ops(load_arch(f"{ARCHS}/{arch}.llmc"))


@st.composite
def profiles(draw):
    """A random accelerator profile: each op native or not, with random weight-type limits."""
    ops = {}
    for op in PLACEABLE:
        if draw(st.booleans()):
            weights = (
                tuple(draw(st.lists(st.sampled_from(TYPES), unique=True)))
                if op in (Op.EMBED, Op.MATMUL, Op.MOE_MATMUL) and draw(st.booleans())
                else None
            )
            refuse = ("sinks",) if op is Op.ATTENTION and draw(st.booleans()) else ()
            ops[op] = OpRule(native=draw(st.booleans()), weights=weights, refuse_inputs=refuse)
    base = get_profile("ascend310b")
    return dataclasses.replace(base, name="rand", ops=ops)


@settings(max_examples=40, deadline=None)
@given(prof=profiles(), arch=st.sampled_from(["qwen2", "gpt_oss"]), wtype=st.sampled_from(TYPES))
def test_partitioning_never_leaves_an_op_where_it_cannot_run(prof, arch, wtype):
    all_profiles = {**list_profiles(), "rand": prof}
    graph = _graph(arch)
    ctx = PartitionContext({w.id: (wtype,) for w in graph.weights()}, {}, True)
    out = insert_transfers(partition_graph(decompose_ops(graph, prof, ctx), prof, all_profiles, ctx))
    verify(out)
    for n in out.nodes():
        assert n.device in all_profiles
        ok, why = native(out, n.id, all_profiles[n.device], ctx)
        assert ok, f"%{n.id} {n.op.value} on {n.device}: {why}"
        if n.op not in UNPLACED and n.device != "rand":
            assert n.fallback_from == "rand" and n.placement
        for src in out.inputs(n.id):  # transfers make every edge same-device
            if src is not None and out.node(src).op is not Op.WEIGHT and n.op is not Op.TRANSFER:
                assert out.node(src).device == n.device


def test_refuse_policy_stops_with_the_profile_message():
    import pytest
    from llmc.ir.errors import LlmcError

    adreno = dataclasses.replace(get_profile("adreno"), unsupported_weight="refuse")
    graph = _graph("qwen2")
    ctx = PartitionContext({w.id: ("Q8_0",) for w in graph.weights()}, {}, True)
    with pytest.raises(LlmcError, match="llama-quantize --pure"):
        partition_graph(graph, adreno, list_profiles(), ctx)


def test_weights_stay_with_their_user_and_inputs_are_on_the_host():
    graph = partition_graph(_graph("qwen2"), get_profile("ascend910b"), list_profiles())
    for w in graph.weights():
        users = graph.users(w.id)
        if users:
            assert w.device == graph.node(users[0]).device
    assert {n.device for n in graph.nodes() if n.op in (Op.TOKENS, Op.POSITIONS)} == {"cpu"}


def test_adreno_rms_norm_needs_a_known_multiple_of_four():
    graph = _graph("qwen2")
    prof = get_profile("adreno")
    norm = next(n for n in graph.nodes() if n.op is Op.RMS_NORM_MUL)
    assert native(graph, norm.id, prof, None) == (False, native(graph, norm.id, prof, None)[1])
    assert "unknown without a GGUF" in native(graph, norm.id, prof, None)[1]
    ok, _ = native(graph, norm.id, prof, PartitionContext({}, {"n_embd": 128}, True))
    assert ok
    ok, why = native(graph, norm.id, prof, PartitionContext({}, {"n_embd": 130}, True))
    assert not ok and "it is 130" in why


def test_without_a_file_weight_typed_ops_are_decided_at_load():
    """adreno limits matmul to Q4_0 and embed to F32/F16: compiled without a file both wait for it (device
    and host path); the opencl profile takes every type, so nothing waits; a refuse profile never waits."""
    graph = partition_graph(_graph("qwen2"), get_profile("adreno"), list_profiles())
    waiting = {n.op: n.load_choice for n in graph.nodes() if n.load_choice is not None}
    assert set(waiting) == {Op.MATMUL, Op.EMBED}
    assert waiting[Op.MATMUL].types == ("Q4_0",) and waiting[Op.MATMUL].fallback == "cpu"
    assert "llama-quantize --pure" in waiting[Op.MATMUL].reason
    assert all(n.device == "adreno" for n in graph.nodes() if n.load_choice is not None)
    opencl = partition_graph(_graph("qwen2"), get_profile("opencl"), list_profiles())
    assert not any(n.load_choice for n in opencl.nodes())
    refuse = dataclasses.replace(get_profile("adreno"), unsupported_weight="refuse")
    assert not any(n.load_choice for n in partition_graph(_graph("qwen2"), refuse, list_profiles()).nodes())
    known = PartitionContext({}, {}, True)          # a file was given: placed at compile time
    assert not any(n.load_choice for n in partition_graph(_graph("qwen2"), get_profile("adreno"), list_profiles(),
                                                          known).nodes())
