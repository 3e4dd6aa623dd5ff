"""insert_transfers: one TRANSFER per value and destination, in the right region, carries included."""

from llmc.compiler.devices import get_profile, list_profiles
from llmc.compiler.elaborate import load_arch
from llmc.compiler.passes.fuse_ops import fuse_ops
from llmc.compiler.passes.insert_transfers import insert_transfers
from llmc.compiler.passes.partition_graph import partition_graph
from llmc.ir.graph import Graph, verify
from llmc.ir.ops import Op

from tests.compiler.graphs import activation, node
from tests.compiler.test_driver import ARCHS


def test_hand_built_crossing_gets_one_shared_transfer():
    g = Graph("t")
    x = activation(g)
    a, b = node(g, Op.SILU, [x]), node(g, Op.SQR, [x])
    g.outputs["logits"] = node(g, Op.ADD, [a, b])
    for nid in g.g.nodes:
        g.update(nid, device="cpu")
    for nid in (a, b):
        g.update(nid, device="npu")
    after = insert_transfers(g)
    verify(after)
    transfers = [n for n in after.nodes() if n.op is Op.TRANSFER]
    assert len(transfers) == 3  # x -> npu (shared by a and b); a, b -> cpu for the add
    into = next(t for t in transfers if after.inputs(t.id) == [x])
    assert (into.attrs["src"].value, into.attrs["dst"].value, into.device) == ("cpu", "npu", "npu")
    assert after.inputs(a) == [into.id] and after.inputs(b) == [into.id]


def test_qwen2_on_310b_starts_the_layer_carry_on_the_device():
    """The embedding runs on the 310B (its Q4_0/Q8_0 kernel), so the carried hidden state starts there with
    no transfer; every transfer the pass does insert moves between two different devices."""
    graph = insert_transfers(
        partition_graph(
            fuse_ops(load_arch(f"{ARCHS}/qwen2.llmc")), get_profile("ascend310b"), list_profiles()
        )
    )
    verify(graph)
    carry = graph.carried[0]
    init = graph.node(carry.init)
    assert init.op is Op.EMBED and init.region == "pre" and init.device == "ascend310b"
    for n in graph.nodes():
        if n.op is Op.TRANSFER:
            assert n.attrs["src"].value != n.attrs["dst"].value
            assert graph.node(graph.inputs(n.id)[0]).device == n.attrs["src"].value
