"""fuse_pointwise: which chains become one kernel, and each fused kernel against its unfused chain.

The kernel check takes every fused group the pipeline makes for the shipped archs and the new-ops test
arch, on the cpu and opencl targets, prints its C kernel, runs it on random inputs of each operand's
layout and compares every stored output with the members run one by one through ir/reference.py.
Tolerance: the fused kernel computes each member's expression as written, so only libm and double-sum
order differ: 2e-6 relative plus 1e-5 of the largest value (as tests/pointwise_cases.py; gelu's one
f16 step does not arise in these chains' data of magnitude 1).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cffi
import numpy as np
import pytest

from llmc.codegen.c import pointwise as c_pointwise
from llmc.codegen.c.build import CFLAGS
from llmc.codegen.core.pointwise import group_kernel
from llmc.compiler.devices import list_profiles
from llmc.compiler.driver import pipeline, run_pipeline
from llmc.compiler.elaborate import load_arch
from llmc.compiler.passes.fuse_pointwise import fuse_pointwise
from llmc.ir import reference as ref
from llmc.ir.expr import Num
from llmc.ir.graph import Graph, verify
from llmc.ir.ops import Op
from tests.compiler.graphs import N, activation, node, weight

ARCHS = Path(__file__).resolve().parents[3] / "archs"
RUNTIME_C = Path(__file__).resolve().parents[3] / "runtime" / "c"
ENV = {"n_embd": 48, "n_head": 3, "n_head_kv": 1, "head_dim": 16, "n_ff": 40, "n_expert": 4, "n_expert_used": 2,
       "n_ff_exp": 32, "n_vocab": 50, "n_batch": 3, "T": 3, "T_out": 3, "i": 0, "eps": 1e-5, "n_rot": 16,
       "rope_base": 1e4, "n_layer": 1}


def _groups(graph: Graph) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for n in graph.nodes():
        if n.fused is not None:
            out.setdefault(n.fused.group, []).append(n.id)
    return out


def test_residual_add_and_next_norm_run_as_one_kernel_that_stores_both():
    profiles = list_profiles()
    g = run_pipeline(load_arch(str(ARCHS / "llama.llmc")), None, pipeline(profiles["cpu"], profiles))
    groups = [[g.node(m).op.value for m in ms] for ms in _groups(g).values()]
    assert ["add", "rms_norm_mul"] in groups
    for gid, ms in _groups(g).items():
        assert ms[-1] == gid and all(g.node(m).fused.stored for m in ms)      # h and x are both read later
        order = g.order(g.node(gid).region)
        assert order.index(ms[-1]) - order.index(ms[0]) == len(ms) - 1        # consecutive in run order


def test_a_value_read_only_inside_is_not_stored_and_outputs_end_groups():
    g = Graph("t")
    x = activation(g)
    s = node(g, Op.SCALE, [x], scale=0.5, bias=0.0)
    y = node(g, Op.TANH, [s])
    g.outputs["logits"] = y
    after = fuse_pointwise(g, lambda device: True)
    verify(after)
    assert after.node(s).fused.group == y and not after.node(s).fused.stored
    assert after.node(y).fused.stored
    g2 = Graph("t")
    x = activation(g2)
    s = node(g2, Op.SCALE, [x], scale=0.5, bias=0.0)
    y = node(g2, Op.TANH, [s])
    g2.outputs["logits"], g2.outputs["scaled"] = y, s
    after = fuse_pointwise(g2, lambda device: True)
    assert after.node(s).fused is None                                       # an output is never a producer
    assert fuse_pointwise(g, lambda device: False).node(s).fused is None     # only where the backend generates


def test_a_group_never_surrounds_an_outside_node():
    """a -> matmul -> b and a -> b: fusing a into b would need the matmul inside the kernel."""
    g = Graph("t")
    x = activation(g)
    a = node(g, Op.SILU, [x])
    m = node(g, Op.MATMUL, [a, weight(g, N, N), None])
    b = node(g, Op.ADD, [a, m])
    g.outputs["logits"] = b
    after = fuse_pointwise(g, lambda device: True)
    assert after.node(a).fused is None and after.node(b).fused is None


def _all_groups():
    from tests.codegen.test_op_vocabulary import NEW_OPS_LLAMA
    import tempfile
    profiles = list_profiles()
    tmp = Path(tempfile.mkdtemp()) / "new_ops.llmc"
    tmp.write_text(NEW_OPS_LLAMA)
    cases = []
    for arch in [str(ARCHS / f"{a}.llmc") for a in ("llama", "qwen2", "gpt_oss")] + [str(tmp)]:
        for target in ("cpu", "opencl"):
            g = run_pipeline(load_arch(arch), None, pipeline(profiles[target], profiles))
            for gid, ms in _groups(g).items():
                if len(ms) > 1 and not any(g.node(m).op is Op.SPLIT for m in ms):
                    cases.append(pytest.param(g, gid, id=f"{Path(arch).stem}-{target}-%{gid}"))
    return cases


@pytest.fixture(scope="module")
def compiler(tmp_path_factory):
    out = tmp_path_factory.mktemp("fused")
    flags = [f for f in CFLAGS if f != "-fvisibility=hidden"]

    def build(plan):
        src = out / f"{plan.name}.c"
        src.write_text("#include <math.h>\n#include \"llmc_common.h\"\n" + c_pointwise.ROUND_F16
                       + c_pointwise.function(plan).replace("static void", "void", 1))
        so = out / f"{plan.name}.so"
        done = subprocess.run(["gcc", *flags, "-Werror", f"-I{RUNTIME_C}", "-shared", str(src), "-o", str(so), "-lm"],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        ffi = cffi.FFI()
        ffi.cdef(f"void {plan.name}({', '.join(c_pointwise.parameters(plan))});")
        return ffi, ffi.dlopen(str(so))
    return build


@pytest.mark.parametrize("graph,gid", _all_groups())
def test_fused_kernel_matches_the_unfused_chain(compiler, graph, gid):
    k = group_kernel(graph, gid)
    rows = int(np.prod([d.eval(ENV) for d in k.rows])) if k.rows else 1
    n = int(k.n.eval(ENV))
    rng = np.random.default_rng(gid)
    shapes = {"elem": (rows, n), "col": (n,), "row": (rows, 1), "scalar": (1,)}
    values: dict[int, np.ndarray] = {}
    args = {}
    for o in k.plan.operands:
        src = graph.node(k.inputs[o.name])
        a = rng.standard_normal(shapes[o.layout]).astype(np.float32)
        if o.layout == "row" or n == 1:
            a = np.abs(a) + np.float32(0.1)      # one value per row: a mean of squares in these archs
        values[src.id] = a.reshape(tuple(d.eval(ENV) for d in src.shape)) if o.layout != "scalar" else a
        args[o.name] = a
    for m in graph.fused_members(gid):                     # the chain, one reference op at a time
        node = graph.node(m)
        ins = [None if i is None else values[i] for i in graph.inputs(m)]
        attrs = {a: v.eval(ENV) for a, v in node.attrs.items() if isinstance(v, Num) or hasattr(v, "eval")}
        attrs = {a: attrs[a] for a in ref.pointwise.OPS[node.op.value].attrs}
        values[m] = getattr(ref, node.op.value)(*ins, **attrs)
    ffi, so = compiler(k.plan)
    outs = [np.full((rows, n), np.nan, np.float32) for _ in k.outputs]
    ptr = lambda a: ffi.from_buffer("float[]", a)
    getattr(so, k.plan.name)(*[ptr(y) for y in outs], *[ptr(args[o.name]) for o in k.plan.operands], rows, n,
                             *[float(k.scalars[a].eval(ENV)) for a in k.plan.scalars])
    for y, m in zip(outs, k.outputs):
        want = values[m].reshape(rows, n).astype(np.float64)
        assert np.array_equal(np.isnan(y), np.isnan(want))          # e.g. rsqrt of a negative random input
        ok = ~np.isnan(want)
        assert ok.any()
        err = np.abs(y[ok] - want[ok])
        assert (err <= 2e-6 * np.abs(want[ok]) + 1e-5 * np.abs(want[ok]).max()).all(), (graph.node(m).op, err.max())
