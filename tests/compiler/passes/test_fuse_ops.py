"""fuse_ops: each rule fires on its pattern, keeps values read elsewhere, and keeps the numerics."""

import numpy as np
from llmc.compiler.passes.fuse_ops import fuse_ops
from llmc.ir import reference as ref
from llmc.ir.graph import Graph, verify
from llmc.ir.ops import Op

from tests.compiler.graphs import F, N, activation, node, shape_of, weight


def _ops(g):
    return [op for op, _ in shape_of(g)]


def test_rms_norm_times_weight_becomes_rms_norm_mul():
    g = Graph("t")
    x = activation(g)
    y = node(g, Op.MUL, [node(g, Op.RMS_NORM, [x], eps=1e-5), weight(g, N, name="gain")])
    g.outputs["logits"] = y
    after = fuse_ops(g)
    verify(after)
    assert ("rms_norm_mul", ("embed", "weight")) in shape_of(after)
    assert "rms_norm" not in _ops(after) and "mul" not in _ops(after)
    assert after.outputs["logits"] == y  # rewritten in place: users and outputs unchanged
    assert after.node(y).attrs["eps"].value == 1e-5
    assert Op.RMS_NORM in {n.op for n in g.nodes()}  # the input graph is not modified


def test_matmul_plus_vector_bias_becomes_a_biased_matmul_but_residual_add_does_not():
    g = Graph("t")
    x = activation(g)
    mm = node(g, Op.MATMUL, [x, weight(g, N, N, name="wq")])
    biased = node(g, Op.ADD, [mm, weight(g, N, name="bq")])
    g.outputs["logits"] = node(g, Op.ADD, [x, biased])  # residual: x is not a weight
    after = fuse_ops(g)
    assert shape_of(after)[-2:] == [("matmul", ("embed", "weight", "weight")), ("add", ("embed", "matmul"))]


def test_silu_times_up_becomes_swiglu_either_order():
    for order in (0, 1):
        g = Graph("t")
        x = activation(g)
        gate = node(g, Op.MATMUL, [x, weight(g, F, N, name="wg")])
        up = node(g, Op.MATMUL, [x, weight(g, F, N, name="wu")])
        s = node(g, Op.SILU, [gate])
        g.outputs["logits"] = node(g, Op.MUL, [s, up] if order == 0 else [up, s])
        after = fuse_ops(g)
        assert shape_of(after)[-1] == ("swiglu", ("matmul", "matmul"))


def test_a_producer_read_twice_is_not_fused():
    g = Graph("t")
    x = activation(g)
    n = node(g, Op.RMS_NORM, [x], eps=1e-5)
    y = node(g, Op.MUL, [n, weight(g, N, name="gain")])
    g.outputs["logits"] = node(g, Op.ADD, [y, n])
    assert shape_of(fuse_ops(g)) == shape_of(g)


def test_rms_norm_mul_reference_is_the_pair():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 8)).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    np.testing.assert_array_equal(ref.rms_norm_mul(x, w, 1e-5), ref.mul(ref.rms_norm(x, 1e-5), w))
