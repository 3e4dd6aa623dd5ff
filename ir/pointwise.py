"""Elementwise and row-wise ops, each defined once as data.

An op here is a scalar expression tree (tinygrad-style) over its inputs and attributes, with row
reductions (`row_sum`, `row_max`) as nodes of the tree. Everything else derives from this one
definition: the op's spec and shape rule (ir/ops.py), the numpy reference (`evaluate`, used by
ir/reference.py and ir/interpret.py), and every backend's kernel (codegen/core/pointwise.py lowers a
tree to row stages; codegen/{c,opencl,ascendc}/pointwise.py print it). A fused chain of ops
(compiler/passes/fuse_pointwise.py) is just a bigger tree built with `substitute`.

Rows: an op works on (rows, n) views of its inputs, n the last axis of the output. An input is either
per element (rows, n), one vector for every row (n,), one value per row (rows, 1), or a slice of the
features of a wider input (`split`). A reduction runs over the n elements of a row.

Rounding is part of the definition, because kernels must match llama.cpp's CPU backend to the bit
where they can (docs/numerics.md): every node has a type, f32 or f64 ("f64" for ggml's double
accumulators), with C's promotion rules, which numpy follows for arrays of those types.

Adding an op: write its `Pointwise` below and add it to `OPS`. Nothing else names it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

# ---- expressions ------------------------------------------------------------------------------------------

UNARY = ("neg", "exp", "tanh", "sqrt", "erf", "to_f16", "to_f32", "to_f64")
BINARY = ("add", "sub", "mul", "div", "max", "min", "le", "ge")
REDUCE = ("row_sum", "row_max")


@dataclass(frozen=True)
class E:
    """One node. kind: "in" (value = input name), "attr" (value = attribute name), "const" (value =
    float), "cols" (n, the row length), a UNARY or BINARY name, "where" (cond, a, b), a REDUCE
    name (value = None), or "f16_table" (value = (name, body); see `f16_table`)."""
    kind: str
    args: tuple["E", ...] = ()
    value: Any = None
    f64: bool = False            # a constant written in double (ggml's `ggml_float` arithmetic)

    # operators build trees: x * x + eps
    def __add__(self, o): return E("add", (self, _e(o)))
    def __radd__(self, o): return E("add", (_e(o), self))
    def __sub__(self, o): return E("sub", (self, _e(o)))
    def __rsub__(self, o): return E("sub", (_e(o), self))
    def __mul__(self, o): return E("mul", (self, _e(o)))
    def __rmul__(self, o): return E("mul", (_e(o), self))
    def __truediv__(self, o): return E("div", (self, _e(o)))
    def __rtruediv__(self, o): return E("div", (_e(o), self))
    def __neg__(self): return E("neg", (self,))

    def __repr__(self) -> str:
        if self.kind in ("in", "attr"):
            return str(self.value)
        if self.kind == "const":
            return repr(self.value)
        if self.kind == "cols":
            return "n"
        return f"{self.kind}({', '.join(map(repr, self.args))})"


def _e(v) -> E:
    return v if isinstance(v, E) else E("const", value=float(v))


def inp(name: str) -> E: return E("in", value=name)
def attr(name: str) -> E: return E("attr", value=name)
def const(v: float, f64: bool = False) -> E: return E("const", value=float(v), f64=f64)
COLS = E("cols")
def exp(x): return E("exp", (_e(x),))
def tanh(x): return E("tanh", (_e(x),))
def sqrt(x): return E("sqrt", (_e(x),))
def erf(x): return E("erf", (_e(x),))
def to_f16(x): return E("to_f16", (_e(x),))      # round to IEEE half (nearest even) and back
def to_f32(x): return E("to_f32", (_e(x),))
def to_f64(x): return E("to_f64", (_e(x),))
def maximum(a, b): return E("max", (_e(a), _e(b)))
def minimum(a, b): return E("min", (_e(a), _e(b)))
def le(a, b): return E("le", (_e(a), _e(b)))
def ge(a, b): return E("ge", (_e(a), _e(b)))
def where(c, a, b): return E("where", (c, _e(a), _e(b)))
def row_sum(x): return E("row_sum", (_e(x),))    # accumulated in double, as ggml_float

TABLE_ARG = E("in", value="h")                   # the f16 value a table's body is a function of


def f16_table(x, name: str, body: Callable[[E], E]) -> E:
    """body(to_f16(x)), where body depends on nothing but its f16 argument (and constants): the value is
    one of 65536, so a backend may tabulate body once and look it up (the C backend does, as ggml's
    f16 tables); the reference and other backends evaluate `expand_tables` of it directly. name names
    the table (a C identifier)."""
    tree = body(TABLE_ARG)
    if inputs_of(tree) != [TABLE_ARG.value] or attrs_of(tree) or any(n.kind in REDUCE for n in walk(tree)):
        raise ValueError(f"f16_table {name}: the body may read only its f16 argument")
    return E("f16_table", (_e(x),), (name, tree))


def expand_tables(e: E) -> E:
    """e with every f16_table node replaced by its body at to_f16 of its argument: the same values."""
    if e.kind == "f16_table":
        name, body = e.value
        return substitute(body, {TABLE_ARG.value: to_f16(expand_tables(e.args[0]))})
    if not e.args:
        return e
    return E(e.kind, tuple(expand_tables(a) for a in e.args), e.value, e.f64)
def row_max(x): return E("row_max", (_e(x),))


def dtype(e: E) -> str:
    """"f32", "f64", "int" (the row length) or "bool", by C's promotion rules."""
    k = e.kind
    if k in ("in", "attr", "row_max", "to_f16", "to_f32", "f16_table"):
        return "f32"
    if k in ("row_sum", "to_f64"):
        return "f64"
    if k == "const":
        return "f64" if e.f64 else "f32"
    if k == "cols":
        return "int"
    if k in ("le", "ge"):
        return "bool"
    kinds = {dtype(a) for a in (e.args[1:] if k == "where" else e.args)}
    return "f64" if "f64" in kinds else "f32"


def walk(e: E):
    """Every node of the tree, children first, each once."""
    seen: set[E] = set()

    def go(n: E):
        if n in seen:
            return
        seen.add(n)
        for a in n.args:
            yield from go(a)
        yield n
    yield from go(e)


def inputs_of(e: E) -> list[str]:
    return list(dict.fromkeys(n.value for n in walk(e) if n.kind == "in"))


def attrs_of(e: E) -> list[str]:
    return list(dict.fromkeys(n.value for n in walk(e) if n.kind == "attr"))


def per_row(e: E) -> bool:
    """True when the value is the same for every element of a row (a reduction, or built from them)."""
    if e.kind in REDUCE or e.kind in ("attr", "const", "cols"):
        return True
    if e.kind == "in":
        return False
    return all(per_row(a) for a in e.args)


def substitute(e: E, values: Mapping[str, E]) -> E:
    """The tree with inputs (and attributes) replaced by trees: how a fused chain is built."""
    if e.kind in ("in", "attr") and e.value in values:
        return values[e.value]
    if not e.args:
        return e
    return E(e.kind, tuple(substitute(a, values) for a in e.args), e.value, e.f64)


# ---- ops --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pointwise:
    """One op: inputs (a trailing '?' marks an optional one, replaced by `absent[name]` when missing),
    attributes (default, or None = required) and the expression of one output element. `absent` gives the
    value an input reads as when it is missing: an optional input left out, or an optional GGUF weight
    absent from the file (a NULL pointer at run time)."""
    name: str
    inputs: tuple[str, ...]
    expr: E
    attrs: Mapping[str, float | None] = field(default_factory=dict)
    absent: Mapping[str, float] = field(default_factory=dict)
    doc: str = ""
    composite: bool = False           # has a decomposition (compiler/passes/decompose_ops.py)
    source: str = ""                  # where llama.cpp computes it this way

    @property
    def reduces(self) -> bool:
        return any(n.kind in REDUCE for n in walk(self.expr))


def _unary(name, fn, doc, source="ggml-cpu/vec.h"):
    return Pointwise(name, ("x",), fn(inp("x")), doc=doc, source=source)


X, A, B, G, U, W = (inp(n) for n in ("x", "a", "b", "gate", "up", "w"))


def _rms(x: E, eps: E) -> E:
    """x / sqrt(mean(x²) + eps): squares in f32, summed in double, the mean rounded to f32."""
    mean = to_f32(row_sum(to_f64(x * x)) / COLS)
    return x * (1.0 / sqrt(mean + eps))


def _silu(x: E) -> E:
    return x / (1.0 + exp(-x))


def _gelu(x: E) -> E:
    """The tanh form read from ggml's f16 table: input rounded to f16, result stored as f16, with the
    table's bypasses x <= -10 -> 0 and x >= 10 -> x. ggml's ggml_gelu_f32 is compiled with the inner
    1 + 0.044715·x·x contracted to fmaf(0.044715·x, x, 1); on f16 inputs the double form below is that
    fma exactly (the product is exact in double, the sum rounded once: checked on all 63488 finite f16),
    and with it the table is ggml's on every entry (without it, one entry differs)."""
    def table(h: E) -> E:
        inner = to_f32(to_f64(0.044715 * h) * to_f64(h) + const(1.0, f64=True))
        return to_f16(0.5 * h * (1.0 + tanh(const(0.79788456080286535587989211986876) * h * inner)))
    g = f16_table(x, "gelu", table)
    return where(le(x, -10.0), 0.0, where(ge(x, 10.0), x, g))


def _layer_norm(x: E, eps: E) -> E:
    """ggml_norm: mean = (float)sum / n in f32; variance = sum of (x - mean)² in double / n."""
    mean = to_f32(row_sum(to_f64(x))) / COLS
    d = x - mean
    var = to_f32(row_sum(to_f64(d * d)) / COLS)
    return d * (1.0 / sqrt(var + eps))


def _gate_oai(g: E, u: E) -> E:
    gc = minimum(g, attr("limit"))
    uc = minimum(maximum(u, -attr("limit")), attr("limit"))
    return gc / (1.0 + exp(attr("alpha") * -gc)) * (uc + 1.0)


OPS: dict[str, Pointwise] = {p.name: p for p in [
    Pointwise("add", ("a", "b"), A + B, absent={"b": 0.0}, doc="a + b, b broadcast over leading axes (or one value per row)"),
    Pointwise("mul", ("a", "b"), A * B, absent={"b": 1.0}, doc="a * b, b broadcast over leading axes (or one value per row)"),
    Pointwise("div", ("a", "b"), A / B, absent={"b": 1.0}, doc="a / b, b broadcast over leading axes (or one value per row)"),
    Pointwise("scale", ("x",), X * attr("scale") + attr("bias"), {"scale": 1.0, "bias": 0.0},
              doc="x * scale + bias"),
    _unary("sqr", lambda x: x * x, "x * x"),
    _unary("rsqrt", lambda x: 1.0 / sqrt(x), "1 / sqrt(x)"),
    _unary("silu", _silu, "x * sigmoid(x) = x / (1 + exp(-x))"),
    _unary("tanh", tanh, "tanh(x)"),
    _unary("exp", exp, "e^x"),
    _unary("gelu", _gelu, "GELU, tanh form, through ggml's f16 table (x <= -10 -> 0, x >= 10 -> x)"),
    _unary("gelu_erf", lambda x: 0.5 * x * (1.0 + erf(x * const(0.70710678118654752440084436210484))),
           "GELU, erf form: 0.5 x (1 + erf(x / sqrt 2))"),
    Pointwise("softcap", ("x",), where(le(attr("cap"), 0.0), X, tanh(X * (1.0 / attr("cap"))) * attr("cap")),
              {"cap": None},
              doc="tanh(x / cap) * cap (Gemma 2 logit soft-capping; llama.cpp scales by 1/cap); cap <= 0 "
                  "leaves x as it is (llama.cpp skips a cap of 0, so one arch serves files with and without)",
              source="llama.cpp src/models/gemma2.cpp: scale(1/c), tanh, scale(c)"),
    Pointwise("mean", ("x",), to_f32(row_sum(to_f64(X)) / COLS), doc="mean over the last axis, kept as size 1"),
    Pointwise("softmax", ("x",), to_f32(exp(X - row_max(X)) / row_sum(to_f64(exp(X - row_max(X))))),
              doc="softmax over the last axis (sum in double)"),
    Pointwise("rms_norm", ("x",), _rms(X, attr("eps")), {"eps": None}, composite=True,
              doc="x / sqrt(mean(x^2) + eps)", source="ggml-cpu/ops.cpp ggml_compute_forward_rms_norm_f32"),
    Pointwise("rms_norm_mul", ("x", "w"), _rms(X, attr("eps")) * W, {"eps": None}, composite=True,
              doc="rms_norm(x, eps) * w, w (n,) broadcast over the rows of x (..., n)"),
    Pointwise("layer_norm", ("x", "w?", "b?"), _layer_norm(X, attr("eps")) * W + B, {"eps": None},
              absent={"w": 1.0, "b": 0.0},
              doc="(x - mean) / sqrt(var + eps) [* w] [+ b], over the last axis",
              source="ggml-cpu/ops.cpp ggml_compute_forward_norm_f32, then ggml_mul, ggml_add"),
    Pointwise("swiglu", ("gate", "up"), _silu(G) * U, composite=True, doc="silu(gate) * up"),
    Pointwise("swiglu_oai", ("gate", "up"), _gate_oai(G, U), {"alpha": 1.702, "limit": 7.0},
              doc="gpt-oss: min(g, limit) * sigmoid(alpha * min(g, limit)) * (clamp(u, ±limit) + 1)"),
    Pointwise("split", ("x",), X, {"sizes": None, "part": None},
              doc="part k of the last axis cut into pieces of the given sizes: split(qkv, sizes=[a, b, c], "
                  "part=1) is qkv[..., a:a+b]"),
]}

SLICING = frozenset({"split"})        # ops whose input is a slice of a wider row (see `split_range`)


def split_range(sizes, part) -> tuple[Any, Any]:
    """(offset, size) of part `part` of `sizes`, for split: works on ints and on symbolic dims."""
    part = int(part)
    offset = 0
    for s in sizes[:part]:
        offset = offset + s
    return offset, sizes[part]


# ---- numpy evaluation: the reference ----------------------------------------------------------------------

_NP_UNARY: dict[str, Callable] = {
    "neg": np.negative, "exp": np.exp, "sqrt": np.sqrt,
    # f32 tanh as double tanh rounded: numpy's own f32 tanh is an ulp off on some arguments, which GELU's
    # 1 + tanh(...) turns into f16 steps (234 of ggml's table entries); with this, GELU's f16 table equals
    # ggml's (built with libm tanhf) on every entry. It is not libm's tanhf elsewhere: glibc's tanhf differs
    # from it in the last bit on ~14 % of arguments drawn from N(0, 9), so the softcap op (ggml_tanh calls
    # tanhf) is not bit-exact; attention's logit cap calls libm through ggml_order.tanhf.
    "tanh": lambda x: np.tanh(x.astype(np.float64)).astype(np.float32) if x.dtype == np.float32 else np.tanh(x),
    "erf": lambda x: np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype),
    "to_f16": lambda x: x.astype(np.float16).astype(np.float32),
    "to_f32": lambda x: np.asarray(x, np.float32), "to_f64": lambda x: np.asarray(x, np.float64),
}
_NP_BINARY: dict[str, Callable] = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "max": np.maximum, "min": np.minimum, "le": np.less_equal, "ge": np.greater_equal,
}


def evaluate(e: E, inputs: Mapping[str, np.ndarray], attrs: Mapping[str, float] | None = None) -> np.ndarray:
    """The tree on numpy arrays; inputs broadcast against each other, reductions run over the last axis.
    f32 inputs; the result is f32."""
    attrs = attrs or {}
    ins = {k: np.asarray(v, np.float32) for k, v in inputs.items()}
    full = np.broadcast_shapes(*(v.shape for v in ins.values()))
    cols = full[-1] if full else 1
    memo: dict[E, np.ndarray] = {}

    def go(n: E):
        if n in memo:
            return memo[n]
        k = n.kind
        if k == "in":
            v = ins[n.value]
        elif k == "attr":
            v = np.float32(attrs[n.value])
        elif k == "const":
            v = np.float64(n.value) if n.f64 else np.float32(n.value)
        elif k == "cols":
            v = cols
        elif k in _NP_UNARY:
            v = _NP_UNARY[k](go(n.args[0]))
        elif k in _NP_BINARY:
            v = _NP_BINARY[k](go(n.args[0]), go(n.args[1]))
        elif k == "f16_table":
            v = go(expand_tables(n))
        elif k == "where":
            v = np.where(go(n.args[0]), go(n.args[1]), go(n.args[2]))
            v = v.astype(np.float64 if dtype(n) == "f64" else np.float32)
        elif k == "row_sum":
            v = np.broadcast_to(np.asarray(go(n.args[0]), np.float64), full).sum(axis=-1, keepdims=True)
        elif k == "row_max":
            v = np.broadcast_to(go(n.args[0]), full).max(axis=-1, keepdims=True).astype(np.float32)
        else:
            raise ValueError(f"unknown expression node {k!r}")
        memo[n] = v
        return v
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        out = np.asarray(go(e), np.float32)
    if per_row(e):
        return np.broadcast_to(out, full[:-1] + (1,)).copy()
    return np.broadcast_to(out, full).copy()


def reference(name: str, *args, **attrs) -> np.ndarray:
    """Run op `name` on numpy arrays: positional inputs in the op's order (None for an absent optional
    one), attributes by keyword."""
    p = OPS[name]
    if p.name in SLICING:
        x = args[0]
        offset, size = split_range([int(s) for s in attrs["sizes"]], attrs["part"])
        return np.ascontiguousarray(x[..., offset:offset + size], np.float32)
    values: dict[str, E] = {}
    given: dict[str, np.ndarray] = {}
    for spec_name, value in zip(p.inputs, list(args) + [None] * (len(p.inputs) - len(args))):
        name_ = spec_name.rstrip("?")
        if value is None:
            values[name_] = const(p.absent[name_])
        else:
            given[name_] = value
    expr = substitute(p.expr, values) if values else p.expr
    full = {**{k: v for k, v in p.attrs.items() if v is not None}, **attrs}
    return evaluate(expr, given, full)
