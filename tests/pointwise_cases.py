"""Cases for the generated pointwise kernels, shared by the C, OpenCL and AscendC tests.

A case is one op of ir/pointwise.py (or a fused chain) with a layout for each input and, for inputs that
may be absent, either a NULL pointer at run time or a constant at compile time. Each backend prints the
case's plan, runs it on random rows and compares with `pointwise.evaluate` on the same inputs.

Tolerances: |y - ref| <= rtol * |ref| + atol * max|ref|, where
- rtol 2e-6: libm's expf/tanhf/erff against numpy's f32 functions (an ulp or two, carried through a few
  roundings), double sums in a different order;
- atol 1e-5: cancellation (a + b with a ≈ -b, x - mean in layer_norm) makes |ref| small, not the error;
- gelu: the same, except that up to 2% of the elements (at least one) may be one f16 step off (rtol
  2e-3): both sides round through f16, and a tanhf result an ulp away from numpy's on a rounding boundary
  lands on the neighbouring f16 value. A kernel that skipped the f16 rounding is off on most elements.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from llmc.codegen.core.pointwise import KernelPlan, lower
from llmc.ir import pointwise as P

TOLERANCE: dict[str, tuple[float, float]] = {}
DEFAULT_TOLERANCE = (2e-6, 1e-5)
F16_STEP = {"gelu": 2e-3}          # op -> rtol of the few elements allowed one f16 step off
ATTRS = {"eps": 1e-5, "scale": 0.75, "bias": -0.25, "cap": 3.0, "alpha": 1.702, "limit": 7.0}


@dataclass(frozen=True)
class Case:
    op: str
    plan: KernelPlan
    expr: P.E                               # with compile-time absent inputs filled in
    layouts: dict                            # input -> layout
    nulls: tuple[str, ...]                  # inputs passed as NULL at run time

    @property
    def tolerance(self) -> tuple[float, float]:
        return TOLERANCE.get(self.op, DEFAULT_TOLERANCE)


def cases(ops=None, tables: bool = False) -> list[Case]:
    """Every op, with its first input per element and each other input per element, per row vector,
    or one value per row; inputs that may be absent also as a NULL pointer and as a compile-time constant.
    tables: plans for a backend that looks f16_table nodes up (codegen.core.pointwise.lower)."""
    out = []
    for name, p in P.OPS.items():
        if name in P.SLICING or (ops is not None and name not in ops):
            continue
        others = [n.rstrip("?") for n in p.inputs[1:]]
        for combo in itertools.product(*[("elem", "col", "row") if n not in p.absent else
                                         ("col", "null", "absent") for n in others]):
            layouts, fill, nullable, nulls = {p.inputs[0]: "elem"}, {}, {}, []
            for n, how in zip(others, combo):
                if how == "absent":
                    fill[n] = P.const(p.absent[n])
                elif how == "null":
                    layouts[n], nullable[n] = "col", p.absent[n]
                    nulls.append(n)
                else:
                    layouts[n] = how
            expr = P.substitute(p.expr, fill) if fill else p.expr
            tag = "_".join([name, *combo])
            plan = lower(f"test_{tag}", expr, {k: v for k, v in layouts.items() if k in P.inputs_of(expr)},
                         nullable, tables=tables)
            out.append(Case(name, plan, expr, layouts, tuple(nulls)))
    return out


def inputs(case: Case, rows: int, n: int, rng: np.random.Generator, magnitude: float) -> dict[str, np.ndarray]:
    """Random inputs of each operand's layout for a (rows, n) view (NULL operands left out)."""
    shape = {"elem": (rows, n), "col": (n,), "row": (rows, 1), "scalar": (1,)}
    vals = {}
    for o in case.plan.operands:
        if o.name in case.nulls:
            continue
        vals[o.name] = (rng.standard_normal(shape[case.layouts[o.name]]) * magnitude).astype(np.float32)
    return vals


def expected(case: Case, vals: dict[str, np.ndarray], rows: int, n: int) -> np.ndarray:
    """The reference: evaluate on the same inputs (NULL ones as their absent value)."""
    absent = {o.name: o.absent for o in case.plan.operands}
    fill = {name: P.const(absent[name]) for name in case.nulls}
    expr = P.substitute(case.expr, fill) if fill else case.expr
    return P.evaluate(expr, vals, ATTRS)      # the first input is (rows, n): it fixes the view


def assert_close(case: Case, y: np.ndarray, ref: np.ndarray) -> None:
    rtol, atol = case.tolerance
    finite = np.isfinite(ref)
    assert np.array_equal(np.isnan(y), np.isnan(ref)), f"{case.plan.name}: NaN where the reference has none"
    scale = np.abs(ref[finite]).max() if finite.any() else 1.0
    err = np.abs(y[finite].astype(np.float64) - ref[finite])
    bad = err > rtol * np.abs(ref[finite]) + atol * scale
    if case.op in F16_STEP:
        assert bad.sum() <= max(1, 0.02 * bad.size), f"{case.plan.name}: {bad.sum()} of {bad.size} off"
        bad = err > F16_STEP[case.op] * np.abs(ref[finite]) + atol * scale
    assert not bad.any(), (f"{case.plan.name}: {bad.sum()} of {bad.size} off, worst {err.max():.3g} "
                           f"(rtol {rtol}, atol {atol} x {scale:.3g})")
    assert np.array_equal(y[~finite], ref[~finite], equal_nan=True), f"{case.plan.name}: inf where the reference differs"
