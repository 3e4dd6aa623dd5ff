"""eliminate_dead_code drops what no output reads and keeps tied-weight fallbacks."""

from llmc.compiler.passes.eliminate_dead_code import eliminate_dead_code
from llmc.ir.graph import Graph
from llmc.ir.ops import Op

from tests.compiler.graphs import N, activation, node, shape_of, weight


def test_unused_branch_is_removed():
    g = Graph("t")
    x = activation(g)
    node(g, Op.SILU, [x])  # dead
    g.outputs["logits"] = node(g, Op.SQR, [x])
    after = eliminate_dead_code(g)
    assert [op for op, _ in shape_of(after)] == ["tokens", "weight", "embed", "sqr"]


def test_a_weights_fallback_stays():
    g = Graph("t")
    x = activation(g)
    spare = weight(g, N, name="spare", region="pre")
    head = weight(g, N, name="head", region="pre")
    g.update(head, attrs={**g.node(head).attrs, "fallback": spare})
    g.outputs["logits"] = node(g, Op.MUL, [x, head], region="pre")
    assert spare in eliminate_dead_code(g).g
