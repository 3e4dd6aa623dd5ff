"""Hyperparameters computed in C (the generated llmc_params.c, codegen/c/params.py) against the Python
loader's values (ir/bind.py bind_params over the manifest's formulas): equal to the bit on every packaged
architecture and fixture file, on a few hundred random formulas, and with the same refusals."""
from __future__ import annotations

import math
import random
import shutil
import struct
import subprocess
from pathlib import Path

import cffi
import gguf
import numpy as np
import pytest

import llmc
from llmc.codegen.c import params as params_c
from llmc.compiler.driver import compile_model
from llmc.ir import expr as X
from llmc.ir.bind import bind_params
from llmc.ir.graph import Graph, Param
from llmc.runtime.gguf_file import GGUFFile

RUNTIME_C = Path(llmc.runtime.__file__).parent / "c"
CDEF = "int llmc_model_params(const char *gguf_path, double *params, int n_params, char *err, size_t err_len);"


def _c_params(library: str, gguf_path: str, n: int) -> tuple[list[float] | None, str]:
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    lib = ffi.dlopen(library)
    out = ffi.new("double[]", max(n, 1))
    err = ffi.new("char[]", 1024)
    ok = lib.llmc_model_params(str(gguf_path).encode(), out, n, err, 1024)
    return ([out[i] for i in range(n)] if ok else None), ffi.string(err).decode()


def _python_values(graph_params, arch: str, path: str) -> list[float]:
    f = GGUFFile(path)
    values = bind_params(graph_params, arch, f.metadata, f.tensors, path)
    return [float(v) if isinstance(v, (int, float)) else math.nan for v in values.values()]


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def native_artifacts(tmp_path_factory):
    out = {}
    for arch in ("llama", "qwen2", "gpt_oss", "qwen3", "gemma2", "gemma3", "phi3"):
        d = tmp_path_factory.mktemp(f"{arch}-params")
        out[arch] = (compile_model(llmc.arch_path(arch), "c", str(d)), d)
    return out


def _assert_c_params_equal_python(native_artifact, path: str) -> None:
    """The compiled model's parameter values read from `path` by C equal the Python evaluation of them."""
    result, artifact = native_artifact
    graph_params = list(result.graph.params.values())
    got, err = _c_params(str(artifact / "libllmc_model.so"), path, len(graph_params))
    assert got is not None, err
    want = _python_values(graph_params, result.graph.arch, path)
    assert _same(got, want), [(p.name, g, w) for p, g, w in zip(graph_params, got, want) if g != w]


FILES = [("llama", "llama_f32_path"), ("llama", "smollm2_path"), ("qwen2", "qwen2_q8_path"),
         ("qwen2", "qwen2_q4_0_tied_path"), ("gpt_oss", "gpt_oss_path"), ("gpt_oss", "gpt_oss_f32_path")]


@pytest.mark.parametrize("arch,fixture", FILES, ids=[f[1] for f in FILES])
def test_c_params_equal_python(native_artifacts, arch, fixture, request):
    path = request.getfixturevalue(fixture)
    _assert_c_params_equal_python(native_artifacts[arch], path)


NEW_ARCHS = ["qwen3", "gemma2", "gemma3", "phi3"]


@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_c_params_equal_python_on_newer_archs(native_artifacts, arch, tmp_path):
    """The archs with softcaps, sliding-window patterns and per-arch defaults (their fixture writers)."""
    from tests.fixtures.gemma import write_gemma2, write_gemma3
    from tests.fixtures.phi3 import write_phi3
    from tests.fixtures.qwen3 import write_qwen3
    writer = {"qwen3": write_qwen3, "gemma2": write_gemma2, "gemma3": write_gemma3, "phi3": write_phi3}[arch]
    path = str(writer(tmp_path / f"{arch}.gguf"))
    _assert_c_params_equal_python(native_artifacts[arch], path)


def _patched(src: str, dst: Path, key: str, value: int | None) -> str:
    """A copy of a GGUF file with one u32 metadata value changed (value None: the key renamed away)."""
    data = bytearray(Path(src).read_bytes())
    name = key.encode()
    at = data.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
    if value is None:
        data[at - 1] ^= 0x20                    # the key's last letter changes case: the key is gone
    else:
        assert struct.unpack_from("<I", data, at)[0] == gguf.GGUFValueType.UINT32
        struct.pack_into("<I", data, at + 4, value)
    dst.write_bytes(bytes(data))
    return str(dst)


def test_c_params_refuse_as_python_does(native_artifacts, llama_f32_path, qwen2_q8_path, tmp_path):
    result, artifact = native_artifacts["llama"]
    lib, n = str(artifact / "libllmc_model.so"), len(result.graph.params)
    got, err = _c_params(lib, _patched(llama_f32_path, tmp_path / "a.gguf", "llama.block_count", None), n)
    assert got is None
    assert err == (f"{tmp_path / 'a.gguf'} lacks the metadata key 'llama.block_count' that parameter 'n_layer' "
                   f"needs ({result.graph.params['n_layer'].loc})")
    got, err = _c_params(lib, qwen2_q8_path, n)
    assert got is None and err == f"{qwen2_q8_path} holds a 'qwen2' model but the artifact was compiled for 'llama'"
    got, err = _c_params(lib, tmp_path / "missing.gguf", n)
    assert got is None and "cannot open" in err
    got, err = _c_params(lib, llama_f32_path, n + 1)
    assert got is None and "expected room for" in err


def test_specialized_artifact_checks_its_params_in_c(tmp_path, llama_f32_path):
    out = tmp_path / "spec"
    result = compile_model(llmc.arch_path("llama"), "c", str(out), specialize=llama_f32_path)
    other = _patched(llama_f32_path, tmp_path / "b.gguf", "llama.feed_forward_length", 192)
    got, err = _c_params(str(out / "libllmc_model.so"), other, len(result.graph.params))
    assert got is None
    assert err == (f"this artifact was specialized for llama-f32.gguf (n_ff = 160); {other} has n_ff = 192")


# ---- random formulas --------------------------------------------------------------------------------------
BASE = {"a": 12, "b": 5, "z": 0, "f": 0.75, "g": -2.5, "s": "yarn", "e": "", "flag": True}
META_TYPES = {int: gguf.GGUFValueType.INT32, float: gguf.GGUFValueType.FLOAT64, str: gguf.GGUFValueType.STRING,
              bool: gguf.GGUFValueType.BOOL}


def _random_expr(rng: random.Random, depth: int) -> X.Expr:
    if depth == 0 or rng.random() < 0.25:
        kind = rng.random()
        if kind < 0.5:
            return X.Name(rng.choice(list(BASE)))
        if kind < 0.75:
            return X.Num(rng.randint(-4, 20))
        if kind < 0.9:
            return X.Num(rng.choice([0.5, 1e-6, 3.25, -0.125, 10000.0]))
        return X.Num(rng.choice(["yarn", "none", ""]))
    kind = rng.random()
    if kind < 0.55:
        return X.BinOp(rng.choice(["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and"]),
                       _random_expr(rng, depth - 1), _random_expr(rng, depth - 1))
    if kind < 0.65:
        return X.Neg(_random_expr(rng, depth - 1))
    if kind < 0.8:
        return X.Cond(_random_expr(rng, depth - 1), _random_expr(rng, depth - 1), _random_expr(rng, depth - 1))
    func = rng.choice(sorted(X.FUNCTIONS))
    n = rng.choice([2, 3]) if func in ("min", "max") else 1
    return X.Call(func, tuple(_random_expr(rng, depth - 1) for _ in range(n)))


def _python_numeric(e: X.Expr, env) -> float | None:
    """e's value if Python computes a number without strings in arithmetic (the C form's domain), else None."""
    try:
        for sub in _subexpressions(e):
            if isinstance(sub, (X.BinOp, X.Neg, X.Call)) and (sub.op if isinstance(sub, X.BinOp) else "") not in (
                    "==", "!=", "and"):
                operands = [sub.left, sub.right] if isinstance(sub, X.BinOp) else (
                    [sub.operand] if isinstance(sub, X.Neg) else list(sub.args))
                if any(isinstance(o.eval(env), str) for o in operands):
                    return None
        value = e.eval(env)
    except (ArithmeticError, ValueError, TypeError):
        return None
    if isinstance(value, str) or abs(value) > 2**52:
        return None
    return float(value)


def _subexpressions(e: X.Expr):
    yield e
    children = {X.BinOp: lambda n: [n.left, n.right], X.Neg: lambda n: [n.operand],
                X.Cond: lambda n: [n.test, n.then, n.otherwise], X.Call: lambda n: list(n.args)}.get(type(e))
    for child in children(e) if children else []:
        yield from _subexpressions(child)


def test_random_formulas_agree(tmp_path):
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    rng = random.Random(13)
    graph = Graph(arch="test", source="random.llmc")
    for name, value in BASE.items():
        graph.params[name] = Param(name, None, meta_key=f"test.{name}")
    kept = []
    while len(kept) < 300:
        e = _random_expr(rng, 4)
        value = _python_numeric(e, BASE)
        if value is not None:
            kept.append((f"p{len(kept)}", e, value))
    for name, e, _ in kept:
        graph.params[name] = Param(name, None, expr=e)
    path = tmp_path / "meta.gguf"
    writer = gguf.GGUFWriter(str(path), "test")
    for name, value in BASE.items():
        writer.add_key_value(f"test.{name}", value, META_TYPES[type(value)])
    writer.add_tensor("t", np.zeros(32, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (tmp_path / "params.c").write_text(params_c.render_params_c(graph))
    (tmp_path / "fail.c").write_text(
        '#include <stdarg.h>\n#include <stdio.h>\n#include <stddef.h>\n'
        'int llmc_fail(char *err, size_t n, const char *fmt, ...) { va_list ap; va_start(ap, fmt); '
        'vsnprintf(err, n, fmt, ap); va_end(ap); return 0; }\n')
    lib = tmp_path / "libparams.so"
    subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L", "-shared",
                    "-fPIC", "-I", str(RUNTIME_C), str(tmp_path / "params.c"), str(tmp_path / "fail.c"),
                    str(RUNTIME_C / "llmc_gguf.c"), "-lm", "-o", str(lib)], check=True)
    got, err = _c_params(str(lib), str(path), len(graph.params))
    assert got is not None, err
    want = _python_values(list(graph.params.values()), "test", str(path))
    assert got[:len(BASE)] == [12, 5, 0, 0.75, -2.5, got[5], got[6], 1.0] and math.isnan(got[5])
    bad = [(name, str(e), g, w) for (name, e, _), g, w in zip(kept, got[len(BASE):], want[len(BASE):])
           if not _same([g], [w])]
    assert not bad, bad[:5]


@pytest.mark.parametrize("flags", [[True, True, True, False], [True] * 4, [False] * 4, [True, True, True]],
                         ids=["period4", "all-swa", "none", "short-array"])
def test_c_params_read_per_layer_flags_as_python_does(native_artifacts, flags, tmp_path):
    """gemma3's meta_period(): one SWA flag per layer becomes the same period in C and in Python (an array
    shorter than block_count leaves the last layers global, as llama.cpp reads it)."""
    from tests.fixtures.gemma import write_gemma3
    path = str(write_gemma3(tmp_path / "flags.gguf", weight_type="F32", n_layer=4, swa_pattern=flags))
    _assert_c_params_equal_python(native_artifacts["gemma3"], path)


def test_c_params_refuse_flags_as_python_does(native_artifacts, tmp_path):
    from tests.fixtures.gemma import write_gemma3
    result, artifact = native_artifacts["gemma3"]
    path = str(write_gemma3(tmp_path / "odd.gguf", weight_type="F32", n_layer=4, swa_pattern=[True, False, False, True]))
    got, err = _c_params(str(artifact / "libllmc_model.so"), path, len(result.graph.params))
    want = (f"{path}: the per-layer flags in 'gemma3.attention.sliding_window_pattern' (parameter 'swa_pattern') "
            f"repeat no period n with layer i flagged when i % n < n - 1: layer 2 is not flagged")
    assert got is None and err == want
    with pytest.raises(llmc.BindError) as python_err:
        _python_values(list(result.graph.params.values()), "gemma3", path)
    assert want in str(python_err.value)
