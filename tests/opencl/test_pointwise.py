"""Generated OpenCL kernels of every pointwise op (codegen/opencl/pointwise.py) against ir/pointwise.py's
numpy evaluation of the same definition, for every input layout, on the OpenCL device (PoCL in CI).
Cases and tolerances: tests/pointwise_cases.py."""
from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmc.codegen.opencl import kernels
from llmc.codegen.opencl import pointwise as ocl_pointwise
from tests.opencl.harness import need_opencl
from tests.pointwise_cases import ATTRS, assert_close, cases, expected, inputs

CASES = cases()


@functools.cache
def _source() -> str:
    preamble = kernels.ENV.from_string('{% from "_common.cl.j2" import preamble %}{{ preamble(["test"]) }}')
    return preamble.render() + ocl_pointwise.ROUND_F16 + "".join(ocl_pointwise.kernel(c.plan) for c in CASES)


def run(case, vals, rows, n):
    dev = need_opencl()
    y = dev.buffer(nbytes=4 * rows * (1 if case.plan.per_row_out else n))
    args = [("m", y)] + [("m", None if o.name in case.nulls else dev.buffer(vals[o.name])) for o in case.plan.operands]
    args += [("i", rows), ("i", n)] + [("f", ATTRS[a]) for a in case.plan.scalars]
    items = rows * n if ocl_pointwise.per_element(case.plan) else rows
    dev.run(dev.kernel(_source(), case.plan.name), (items,), *args)
    return dev.read(y, (rows, 1) if case.plan.per_row_out else (rows, n))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, len(CASES) - 1), rows=st.integers(1, 5), n=st.integers(1, 70),
       magnitude=st.sampled_from([0.01, 1.0, 4.0, 30.0]), seed=st.integers(0, 2**32 - 1))
def test_generated_kernel_matches_its_definition(index, rows, n, magnitude, seed):
    case = CASES[index]
    vals = inputs(case, rows, n, np.random.default_rng(seed), magnitude)
    assert_close(case, run(case, vals, rows, n), expected(case, vals, rows, n))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.plan.name)
def test_each_case_once(case):
    vals = inputs(case, 3, 33, np.random.default_rng(1), 4.0)
    assert_close(case, run(case, vals, 3, 33), expected(case, vals, 3, 33))
