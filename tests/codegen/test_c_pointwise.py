"""Generated C kernels of every pointwise op (codegen/c/pointwise.py) against ir/pointwise.py's numpy
evaluation of the same definition, for every input layout (tests/pointwise_cases.py, which also gives the
tolerances). All kernels are compiled once, with the model's own flags, into one library."""
from __future__ import annotations

import subprocess
from pathlib import Path

import cffi
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmc.codegen.c import pointwise as c_pointwise
from llmc.codegen.c.build import CFLAGS
from tests.codegen import ggml_cpu_order
from tests.pointwise_cases import ATTRS, assert_close, cases, expected, inputs

RUNTIME_C = Path(__file__).resolve().parents[2] / "runtime" / "c"
CASES = cases(tables=True)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("c_pointwise")
    functions = [c_pointwise.function(c.plan).replace("static void", "void", 1) for c in CASES]
    tables = {c_pointwise.table_name(t): c_pointwise.table(t) for c in CASES for t in c_pointwise.tables_of(c.plan)}
    src = out / "pointwise.c"
    src.write_text("#include <math.h>\n#include \"llmc_common.h\"\n" + c_pointwise.ROUND_F16
                   + "".join(tables.values()) + "\n".join(functions))
    so = out / "libpointwise.so"
    flags = [f for f in CFLAGS if f != "-fvisibility=hidden"]
    done = subprocess.run(["gcc", *flags, "-Werror", f"-I{RUNTIME_C}", "-shared", str(src), "-o", str(so), "-lm"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ffi = cffi.FFI()
    ffi.cdef("\n".join(f"void {c.plan.name}({', '.join(c_pointwise.parameters(c.plan))});" for c in CASES))
    return ffi, ffi.dlopen(str(so))


def run(lib, case, vals, rows, n):
    ffi, so = lib
    y = np.full((rows, 1) if case.plan.per_row_out else (rows, n), np.nan, np.float32)
    ptr = lambda a: ffi.from_buffer("float[]", a)
    args = [ptr(y)] + [ffi.NULL if o.name in case.nulls else ptr(vals[o.name]) for o in case.plan.operands]
    getattr(so, case.plan.name)(*args, rows, n, *[ATTRS[a] for a in case.plan.scalars])
    return y


def test_every_op_has_cases():
    from llmc.ir import pointwise as P
    assert {c.op for c in CASES} == set(P.OPS) - P.SLICING


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, len(CASES) - 1), rows=st.integers(1, 5), n=st.integers(1, 70),
       magnitude=st.sampled_from([0.01, 1.0, 4.0, 30.0]), seed=st.integers(0, 2**32 - 1))
def test_generated_kernel_matches_its_definition(lib, index, rows, n, magnitude, seed):
    case = CASES[index]
    vals = inputs(case, rows, n, np.random.default_rng(seed), magnitude)
    assert_close(case, run(lib, case, vals, rows, n), expected(case, vals, rows, n))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.plan.name)
def test_each_case_once(lib, case):
    """Every case at least once, whatever hypothesis draws above."""
    vals = inputs(case, 3, 33, np.random.default_rng(1), 4.0)
    assert_close(case, run(lib, case, vals, 3, 33), expected(case, vals, 3, 33))


def llama_cpp_gelu_table() -> np.ndarray:
    """ggml_table_gelu_f16 of the installed oracle's CPU backend, filled by ggml_cpu_init, as f32."""
    import ctypes
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (the llama.cpp oracle) is not "
                                                        "installed: pip install .[oracle]")
    cpu = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-cpu.so"))
    cpu.ggml_cpu_init()
    table = (ctypes.c_uint16 * 65536).in_dll(cpu, "ggml_table_gelu_f16")
    return np.frombuffer(table, np.uint16).view(np.float16).astype(np.float32)


def test_gelu_is_ggml_table_on_every_f16(lib):
    """The generated C GELU on every f16 value (below -10 and above 10 the table is bypassed) equals ggml's
    f16 table: our transcription of how ggml_cpu_init fills it (the fmaf GCC puts in its inner term), and,
    when the oracle is installed, the table itself."""
    case = next(c for c in CASES if c.op == "gelu" and not c.nulls)
    x = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    y = run(lib, case, {case.plan.operands[0].name: x}, 1, x.size)[0]
    inside = np.isfinite(x) & (x > -10) & (x < 10)
    np.testing.assert_array_equal(y[inside], ggml_cpu_order.gelu_table()[inside])
    np.testing.assert_array_equal(y[inside], llama_cpp_gelu_table()[inside])


def test_gelu_kernel_looks_its_table_up():
    """The C GELU reads its once-filled table per element; tanhf runs only in the table's fill."""
    case = next(c for c in CASES if c.op == "gelu" and not c.nulls)
    (node,) = c_pointwise.tables_of(case.plan)
    kernel = c_pointwise.function(case.plan)
    assert f"{c_pointwise.table_name(node)}[llmc_f32_to_f16(" in kernel and "tanhf" not in kernel
    assert "tanhf" in c_pointwise.table(node)


def test_f16_table_body_reads_only_its_argument():
    from llmc.ir import pointwise as P
    with pytest.raises(ValueError, match="f16_table twice"):
        P.f16_table(P.inp("x"), "twice", lambda h: h * P.inp("y"))
