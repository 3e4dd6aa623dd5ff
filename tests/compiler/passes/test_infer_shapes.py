"""infer_shapes repairs a stale shape and refuses an impossible one with the DSL location."""

import pytest
from llmc.compiler.passes.infer_shapes import infer_shapes
from llmc.ir import expr as X
from llmc.ir.errors import DslError
from llmc.ir.graph import Graph
from llmc.ir.ops import Op

from tests.compiler.graphs import F, N, T, activation, node, weight


def test_stale_shape_is_recomputed():
    g = Graph("t")
    y = node(g, Op.MATMUL, [activation(g), weight(g, F, N)])
    g.update(y, shape=(T, X.Num(3)))
    assert infer_shapes(g).node(y).shape == (T, F)


def test_mismatch_is_a_dsl_error():
    g = Graph("t")
    x = activation(g)
    y = node(g, Op.MATMUL, [x, weight(g, F, N)])
    g.set_inputs(y, [x, weight(g, F, F, name="bad"), None])
    with pytest.raises(DslError, match="matmul"):
        infer_shapes(g)
