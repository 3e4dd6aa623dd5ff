"""decompose_ops: a composite the profile lacks becomes its steps, bit-identical under the reference."""

import numpy as np
from llmc.compiler.devices import get_profile
from llmc.compiler.passes.decompose_ops import decompose_ops
from llmc.ir import reference as ref
from llmc.ir.graph import Graph, verify
from llmc.ir.ops import Op

from tests.compiler.graphs import N, activation, node, shape_of, weight


def _norm_graph():
    g = Graph("t")
    x = activation(g)
    g.outputs["logits"] = node(g, Op.RMS_NORM_MUL, [x, weight(g, N, name="gain")], eps=1e-5)
    return g


def test_rms_norm_mul_on_310b_becomes_sqr_mean_scale_rsqrt_mul_mul():
    after = decompose_ops(_norm_graph(), get_profile("ascend310b"))
    verify(after)
    assert [op for op, _ in shape_of(after)][-6:] == ["sqr", "mean", "scale", "rsqrt", "mul", "mul"]
    scale = next(n for n in after.nodes() if n.op is Op.SCALE)
    assert scale.attrs["bias"].value == 1e-5 and scale.attrs["scale"].value == 1.0
    assert "no RmsNorm high-level API" in after.node(after.outputs["logits"]).decomposed_from


def test_910b_keeps_rms_norm_whole():
    g = _norm_graph()
    assert shape_of(decompose_ops(g, get_profile("ascend910b"))) == shape_of(g)


def test_decomposed_rms_norm_is_bit_identical_in_the_reference():
    x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    steps = ref.mul(x, ref.rsqrt(ref.scale(ref.mean(ref.sqr(x)), 1.0, 1e-6)))
    np.testing.assert_array_equal(steps, ref.rms_norm(x, 1e-6))
    g, u = x[:, :32], x[:, 32:]
    np.testing.assert_array_equal(ref.mul(ref.silu(g), u), ref.swiglu(g, u))
