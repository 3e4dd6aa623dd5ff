"""Generated AscendC pointwise kernels (codegen/ascendc/pointwise.py) against their definitions.

Every op of ir/pointwise.py that the generator covers runs on the emulator for each chip (310B and 910B
with DataCopyPad; 310P without it, where rows that are not whole 32-byte blocks take the staged one-core
path) and is compared with `evaluate` of its definition (numpy, sums in double). Tolerances: the
vector unit sums in float (per-tile tree partials), so row ops allow rtol 2e-5 + atol 2e-6 (n <= 700);
elementwise ops built from one rounding per instruction allow rtol 1e-5 + atol 1e-6 (tanh is
1 - 2 / (exp(2x) + 1): absolute, not relative, error near 0); gelu reads an f16 table, so a tanh
difference may move its f16 rounding by one ulp (rtol 1e-3). Fused chains are compared with the unfused
chain, each op's result rounded to f32 as separate kernels would store it.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmc.codegen.ascendc import kernels as K
from llmc.codegen.ascendc import pointwise as AP
from llmc.codegen.core.pointwise import lower
from llmc.ir import pointwise as P
from llmc.runtime.ascendc.launch import run

CHIPS = [K.ASCEND_310B, K.ASCEND_310P, K.ASCEND_910B]
EXAMPLES = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROW_OPS = {name for name, p in P.OPS.items() if p.reduces}
# second inputs read as one vector for every row; the rest per element
COL_INPUTS = {"rms_norm_mul": {"w"}, "layer_norm": {"w", "b"}}
ATTRS = {"eps": 1e-5, "scale": 0.75, "bias": -0.25, "cap": 3.0, "alpha": 1.702, "limit": 7.0}
COVERED = sorted(n for n, p in P.OPS.items()
                 if n not in P.SLICING and AP.supports(lower(n, p.expr, {i.rstrip("?"): "elem" for i in p.inputs})) is None)


def _plan(name: str):
    p = P.OPS[name]
    layouts = {i.rstrip("?"): "col" if i.rstrip("?") in COL_INPUTS.get(name, ()) else "elem" for i in p.inputs}
    return lower(f"pw_{name}", p.expr, layouts, doc=(f"{name}: {p.doc}",))


def _inputs(kernel, seed: int, name: str) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for a in kernel.args:
        if a.output:
            continue
        x = rng.standard_normal(a.shape).astype(np.float32) * 4
        if name == "rsqrt":
            x = np.abs(x) + np.float32(0.01)
        if name == "div" and a.name == "b":
            x = np.where(np.abs(x) < 0.1, np.float32(0.5), x).astype(np.float32)
        out.append(x)
    return out


def _close(got, want, name):
    want = np.asarray(want, np.float32).reshape(got.shape)
    if name == "gelu":
        rtol, atol = 1e-3, 1e-6
    elif name in ROW_OPS:
        rtol, atol = 2e-5, 2e-6
    else:
        rtol, atol = 1e-5, 1e-6
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("chip", CHIPS, ids=lambda c: c.name)
@pytest.mark.parametrize("name", COVERED)
@EXAMPLES
@given(rows=st.integers(1, 3), n=st.integers(1, 700), tile=st.sampled_from([64, 128, AP.MAX_TILE]),
       seed=st.integers(0, 2**16))
@example(rows=2, n=200, tile=64, seed=1)           # ragged last tile, reductions across four tiles
def test_op_matches_its_definition(chip, name, rows, n, tile, seed):
    plan = _plan(name)
    attrs = {a: ATTRS[a] for a in plan.scalars}
    kernel = AP.kernel(plan, chip, rows, n, scalars=attrs, max_tile=tile)
    ins = _inputs(kernel, seed, name)
    names = [a.name for a in kernel.args if not a.output]
    got = run(kernel, *ins)
    _close(got, P.evaluate(P.OPS[name].expr, dict(zip(names, ins)), attrs), name)


def test_covered_ops_are_every_op_but_erf():
    """A test that fails when the generator silently drops an op: all but gelu_erf (no Erf API) and split
    (tested with its slice layout below) are covered."""
    assert set(P.OPS) - set(COVERED) == {"gelu_erf", "split"}


@pytest.mark.parametrize("chip", CHIPS, ids=lambda c: c.name)
def test_split_reads_a_slice_of_a_wider_row(chip):
    plan = lower("pw_split_x", P.OPS["split"].expr, {"x": "slice"})
    rows, width, offset, n = 3, 300, 130, 100
    kernel = AP.kernel(plan, chip, rows, n, slices={"x": (width, offset)}, max_tile=64)
    x = np.random.default_rng(3).standard_normal((rows, width)).astype(np.float32)
    np.testing.assert_array_equal(run(kernel, x), x[:, offset:offset + n])


@pytest.mark.parametrize("chip", CHIPS, ids=lambda c: c.name)
def test_absent_optional_input_reads_its_default(chip):
    """layer_norm without its bias: the kernel reads b as 0 when the tiling says it is absent."""
    p = P.OPS["layer_norm"]
    plan = lower("pw_layer_norm_ccn", p.expr, {"x": "elem", "w": "col", "b": "col"}, nullable={"b": 0.0})
    rows, n = 2, 150
    kernel = AP.kernel(plan, chip, rows, n, scalars={"eps": 1e-5}, present={"b": False}, max_tile=64)
    rng = np.random.default_rng(4)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((rows, n), (n,), (n,)))
    want = P.reference("layer_norm", x, w, None, eps=1e-5)
    np.testing.assert_allclose(run(kernel, x, w, b), want, rtol=2e-5, atol=2e-6)


def _rms_chain():
    """310B's decomposed rms_norm·w: sqr, mean, scale (+eps), rsqrt, mul, mul, as one fused tree."""
    x, w = P.inp("x"), P.inp("w")
    d = {n: P.OPS[n].expr for n in ("sqr", "mean", "scale", "rsqrt", "mul")}
    sq = P.substitute(d["sqr"], {"x": x})
    mean = P.substitute(d["mean"], {"x": sq})
    shifted = P.substitute(d["scale"], {"x": mean, "scale": P.const(1.0), "bias": P.attr("eps")})
    inv = P.substitute(d["rsqrt"], {"x": shifted})
    normed = P.substitute(d["mul"], {"a": x, "b": inv})
    return P.substitute(d["mul"], {"a": normed, "b": w})


@pytest.mark.parametrize("chip", CHIPS, ids=lambda c: c.name)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(1, 3), n=st.integers(1, 600), seed=st.integers(0, 2**16))
@example(rows=1, n=576, seed=0)
def test_fused_rms_norm_chain_matches_the_unfused_chain(chip, rows, n, seed):
    plan = lower("pw_rms_chain", _rms_chain(), {"x": "elem", "w": "col"}, doc=("fused sqr -> mean -> scale -> "
                                                                             "rsqrt -> mul -> mul",))
    kernel = AP.kernel(plan, chip, rows, n, scalars={"eps": 1e-6}, max_tile=128)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, n)).astype(np.float32)
    w = rng.standard_normal(n).astype(np.float32)
    ref = P.reference
    chain = ref("mul", ref("mul", x, ref("rsqrt", ref("scale", ref("mean", ref("sqr", x)), scale=1.0, bias=1e-6))), w)
    np.testing.assert_allclose(run(kernel, x, w), chain, rtol=2e-5, atol=2e-6)
    # and against the fused definition the compiler's rms_norm_mul uses
    np.testing.assert_allclose(run(kernel, x, w), ref("rms_norm_mul", x, w, eps=1e-6), rtol=2e-5, atol=2e-6)


def test_fused_chain_uses_only_basic_apis_and_one_kernel():
    """The 310B chain is one kernel, and uses none of the high-level APIs 310B lacks (RmsNorm, Silu, Tanh)."""
    plan = lower("pw_rms_chain", _rms_chain(), {"x": "elem", "w": "col"})
    src = AP.kernel(plan, K.ASCEND_310B, 1, 64, scalars={"eps": 1e-6}).source
    assert src.count('extern "C" __global__') == 1
    for api in ("RmsNorm(", "Silu(", "Tanh(", "SwiGLU("):
        assert api not in src
    assert "ReduceSum(" in src


def test_310p_copies_whole_blocks_on_every_core_and_stages_the_rest_on_one():
    """310P has no DataCopyPad: rows of whole 32-byte blocks split over the cores with plain DataCopy;
    a ragged row (n = 4, a 4-expert router) runs on one core through the staging block, and its
    neighbours in GM keep their values (read-modify-write of the edge blocks)."""
    plan = _plan("softmax")
    aligned, ragged = AP.kernel(plan, K.ASCEND_310P, 16, 64), AP.kernel(plan, K.ASCEND_310P, 16, 4)
    assert "DataCopyPad(" not in aligned.source and aligned.source == ragged.source
    assert aligned.block_dim == 8 and aligned.tiling_value("blockAligned") == 1
    assert ragged.block_dim == 1 and ragged.tiling_value("blockAligned") == 0
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    _close(run(ragged, x), P.evaluate(P.OPS["softmax"].expr, {"x": x}, {}), "softmax")


def test_erf_is_refused():
    plan = lower("pw_gelu_erf", P.OPS["gelu_erf"].expr, {"x": "elem"})
    with pytest.raises(AP.Unsupported, match="erf"):
        AP.kernel(plan, K.ASCEND_310B, 1, 8)


def _pipeline_groups():
    """Every fused group the pipeline makes on the Ascend profiles for the shipped archs."""
    from tests.compiler.passes.test_fuse_pointwise import _all_groups
    return [p for p in _all_groups() if "-ascend" in p.id]


@pytest.mark.parametrize("graph,gid", _pipeline_groups())
def test_pipeline_fused_kernel_matches_the_unfused_chain(graph, gid):
    """The AscendC kernel of each fused group (qwen2 on 310B: the decomposed rms_norm chain) against its
    members run one by one (tolerance as tests/compiler/passes/test_fuse_pointwise.py)."""
    from tests.compiler.passes.test_fuse_pointwise import ENV, chain_case, check_outputs
    k, rows, n, args, values = chain_case(graph, gid)
    chip = K.CHIPS[graph.node(gid).device.removeprefix("ascend")]
    kernel = AP.kernel(k.plan, chip, rows, n, scalars={a: float(k.scalars[a].eval(ENV)) for a in k.plan.scalars},
                       max_tile=64)
    ins = [args[o.name].reshape(a.shape) for o, a in zip(k.plan.operands, [a for a in kernel.args if not a.output])]
    got = run(kernel, *ins)
    outs = [np.asarray(y, np.float32).reshape(rows, n) for y in (got if isinstance(got, tuple) else (got,))]
    check_outputs(graph, k, outs, values, rows, n)
