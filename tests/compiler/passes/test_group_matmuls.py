"""group_matmuls: CPU matmuls reading one activation are grouped; the generated group computes the same."""
import os

import numpy as np

import llmc
from llmc.compiler.driver import compile_model
from llmc.compiler.passes.group_matmuls import MAX_GROUP, group_matmuls
from llmc.compiler.plan_memory import plan_memory
from llmc.ir.graph import Graph, verify
from llmc.ir.ops import Op
from tests.compiler.graphs import F, N, activation, node, weight
from tests.fixtures.models import fixture_tokens

ARCHS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "archs")


def _groups(g):
    return {nid: g.node(nid).matmul_group for nid in g.order() if g.node(nid).matmul_group is not None}


def test_matmuls_of_one_input_share_a_group_others_do_not():
    g = Graph("t")
    x = activation(g)
    a, b, c = (node(g, Op.MATMUL, [x, weight(g, F, N, name=f"w{k}"), None]) for k in range(3))
    other = node(g, Op.MATMUL, [node(g, Op.SILU, [x]), weight(g, F, N, name="w3"), None])
    g.outputs["logits"] = node(g, Op.ADD, [node(g, Op.ADD, [a, b]), node(g, Op.ADD, [c, other])])
    after = group_matmuls(g)
    verify(after)
    assert _groups(after) == {a: a, b: a, c: a}
    assert _groups(g) == {}                                    # the input graph is not modified
    plan = plan_memory(after)
    assert plan.overlaps() == []
    # every member's output is alive from the leader on, since the group writes them all there
    assert {plan.lifetime[m][0] for m in (a, b, c)} == {plan.lifetime[a][0]}


def test_groups_are_capped():
    g = Graph("t")
    x = activation(g)
    ms = [node(g, Op.MATMUL, [x, weight(g, F, N, name=f"w{k}"), None]) for k in range(MAX_GROUP + 2)]
    out = ms[0]
    for m in ms[1:]:
        out = node(g, Op.ADD, [out, m])
    g.outputs["logits"] = out
    groups = _groups(group_matmuls(g))
    assert sorted(set(groups.values())) == [ms[0], ms[MAX_GROUP]]


def test_grouped_artifact_gives_the_ungrouped_logits(qwen2_q8_path, tmp_path, monkeypatch):
    grouped = compile_model(os.path.join(ARCHS, "qwen2.llmc"), "c", str(tmp_path / "g"))
    assert "llmc_matmul_group_any(" in (tmp_path / "g" / "src" / "model.c").read_text()
    from llmc.compiler import driver
    monkeypatch.setattr(driver, "group_matmuls", lambda graph, groups_on=None: graph)
    compile_model(os.path.join(ARCHS, "qwen2.llmc"), "c", str(tmp_path / "u"))
    assert "group" not in (tmp_path / "u" / "src" / "model.c").read_text()
    ids = fixture_tokens(400, 9, seed=1)
    for n_tokens in (1, 9):                       # decode and a small batch
        a = llmc.load(str(grouped.out_dir), qwen2_q8_path, n_ctx=32).logits(ids[:n_tokens])
        b = llmc.load(str(tmp_path / "u"), qwen2_q8_path, n_ctx=32).logits(ids[:n_tokens])
        np.testing.assert_array_equal(a, b)
