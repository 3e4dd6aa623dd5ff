"""The generated elementwise and row kernels (codegen/c/pointwise.py) built for aarch64 and run under qemu
against ir/pointwise.py's numpy evaluation: every case of tests/pointwise_cases.py once, plus hypothesis
shapes and magnitudes, with that file's tolerances (as tests/codegen/test_c_pointwise.py on x86)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmc.codegen.c import pointwise as c_pointwise
from tests.cross.kernel_rpc import QemuRpc
from tests.pointwise_cases import ATTRS, assert_close, cases, expected, inputs

CASES = cases()


@pytest.fixture(scope="module")
def rpc(tmp_path_factory):
    out = tmp_path_factory.mktemp("aarch64-pointwise")
    prototypes = "\n".join(f"void {c.plan.name}({', '.join(c_pointwise.parameters(c.plan))});" for c in CASES)
    (out / "pointwise.h").write_text(prototypes + "\n")
    functions = [c_pointwise.function(c.plan).replace("static void", "void", 1) for c in CASES]
    source = ('#include <math.h>\n#include "llmc_common.h"\n#include "pointwise.h"\n' + c_pointwise.ROUND_F16
              + "\n".join(functions))
    library = QemuRpc(out, {"pointwise.c": source}, prototypes, "pointwise.h")
    yield library
    library.close()


def run(rpc, case, vals, rows, n):
    y = np.full((rows, 1) if case.plan.per_row_out else (rows, n), np.nan, np.float32)
    operands = [None if o.name in case.nulls else vals[o.name] for o in case.plan.operands]
    rpc.call(case.plan.name, y, *operands, rows, n, *[ATTRS[a] for a in case.plan.scalars])
    return y


@settings(max_examples=100, deadline=None)
@given(index=st.integers(0, len(CASES) - 1), rows=st.integers(1, 5), n=st.integers(1, 70),
       magnitude=st.sampled_from([0.01, 1.0, 4.0, 30.0]), seed=st.integers(0, 2**32 - 1))
def test_generated_kernel_matches_its_definition(rpc, index, rows, n, magnitude, seed):
    case = CASES[index]
    vals = inputs(case, rows, n, np.random.default_rng(seed), magnitude)
    assert_close(case, run(rpc, case, vals, rows, n), expected(case, vals, rows, n))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.plan.name)
def test_each_case_once(rpc, case):
    vals = inputs(case, 3, 33, np.random.default_rng(1), 4.0)
    assert_close(case, run(rpc, case, vals, 3, 33), expected(case, vals, 3, 33))
