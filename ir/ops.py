"""The op vocabulary: one enum, and for each op its inputs, attributes and shape rule.

Elementwise and row ops are defined in ir/pointwise.py (expression trees); their enum members, specs
and shape rule derive from there. The ops below with hand-written kernels are listed here.

Shapes are in numpy order: activations are (T, features) where T is the number of tokens in this step.
Weights are (out, in) as PyTorch stores them; GGUF lists the same tensor as ne = [in, out].
Composite ops (rms_norm, swiglu, attention) have a decomposition into primitives in `ir/decompose.py`
rules, because devices differ in what they can run.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from . import pointwise
from .expr import BinOp, Expr, Num, Value, same_dim

Shape = tuple[Expr, ...]


# Ops with hand-written kernels (and the leaves the compiler makes); every op of ir/pointwise.py joins
# them by its name, so an elementwise or row op is defined in that one file.
_FIXED = {
    # leaves
    "TOKENS": "tokens", "POSITIONS": "positions", "WEIGHT": "weight", "LOOP_IN": "loop_in",
    # primitives
    "EMBED": "embed", "MATMUL": "matmul", "ROPE": "rope", "TOPK": "top_k", "GATHER": "gather",
    "MOE_MATMUL": "moe_matmul", "WEIGHTED_SUM": "weighted_sum", "RESHAPE": "reshape", "TRANSFER": "transfer",
    # composites
    "ATTENTION": "attention",
}
Op = enum.Enum("Op", {**_FIXED, **{name.upper(): name for name in pointwise.OPS}})
Op.__doc__ = "The op vocabulary: the fixed ops above and every op of ir/pointwise.py (Op.<NAME> for each name there)."
POINTWISE: frozenset = frozenset(Op(name) for name in pointwise.OPS)   # ops defined in ir/pointwise.py


def definition(op) -> "pointwise.Pointwise":
    """The expression-tree definition of a pointwise op."""
    return pointwise.OPS[op.value]


def pointwise_view(graph, nid: int) -> tuple:
    """The (rows..., n) shape a pointwise node runs over: its output, or for a per-row op its input's."""
    node = graph.node(nid)
    if pointwise.per_row(definition(node.op).expr):
        return tuple(graph.node(graph.inputs(nid)[0]).shape)
    return tuple(node.shape)


class ShapeError(Exception):
    """Raised by a shape rule; the caller adds the DSL location."""


@dataclass(frozen=True)
class OpSpec:
    op: Op
    inputs: tuple[str, ...]                 # names; a trailing '?' marks an optional input
    attrs: Mapping[str, Value | None] = field(default_factory=dict)  # default, or None = required
    composite: bool = False
    doc: str = ""

    @property
    def min_inputs(self) -> int:
        return sum(1 for name in self.inputs if not name.endswith("?"))


def _spec(op, inputs, attrs=None, composite=False, doc=""):
    return OpSpec(op, tuple(inputs), dict(attrs or {}), composite, doc)


ROPE_ATTRS = {"mode": "norm", "n_dims": None, "base": 10000.0, "freq_scale": 1.0, "ext_factor": 0.0,
              "attn_factor": 1.0, "beta_fast": 32.0, "beta_slow": 1.0, "n_ctx_orig": 0}

SPECS: dict[Op, OpSpec] = {s.op: s for s in [*[
    _spec(Op.TOKENS, [], doc="token ids of this step, (T,) int32"),
    _spec(Op.POSITIONS, [], doc="absolute positions of this step, (T,) int32"),
    _spec(Op.WEIGHT, [], doc="a GGUF tensor"),
    _spec(Op.LOOP_IN, [], doc="a value carried from one layer to the next"),
    _spec(Op.EMBED, ["table", "tokens"], doc="rows of table (V, n) at tokens (T,) -> (T, n)"),
    _spec(Op.MATMUL, ["x", "w", "bias?"], doc="x (..., n_in) @ w (n_out, n_in)^T [+ bias] -> (..., n_out)"),
    _spec(Op.ROPE, ["x", "positions", "freq_factors?"], ROPE_ATTRS,
          doc="rotary embedding of x (T, heads, head_dim); pair i's angle is divided by freq_factors[i] "
              "(n_dims/2,) when given (Llama 3.x rope_freqs, Phi-3 long/short factors)"),
    _spec(Op.TOPK, ["x"], {"k": None}, doc="indices of the k largest values of each row, descending"),
    _spec(Op.GATHER, ["x", "index"], doc="x (T, n) at index (T, k) -> (T, k)"),
    _spec(Op.MOE_MATMUL, ["x", "w", "selected", "bias?"],
          doc="per token and selected expert e: w[e] (E, n_out, n_in) @ x -> (T, k, n_out)"),
    _spec(Op.WEIGHTED_SUM, ["x", "weights"], doc="sum over k of x (T, k, n) * weights (T, k) -> (T, n)"),
    _spec(Op.RESHAPE, ["x"], {"shape": None}, doc="same data, new shape"),
    _spec(Op.TRANSFER, ["x"], {"src": None, "dst": None}, doc="copy between devices"),
    _spec(Op.ATTENTION, ["q", "k", "v", "sinks?"], {"scale": None, "window": 0, "logit_cap": 0.0},
          composite=True,
          doc="causal GQA attention over the KV cache of this layer; q (T, Hq, D), k/v (T, Hkv, D); "
              "logit_cap > 0 caps the logits: logit_cap * tanh(q·k * scale / logit_cap) (Gemma 2)"),
], *[_spec(Op(p.name), p.inputs, p.attrs, p.composite, p.doc) for p in pointwise.OPS.values()]]}
assert set(SPECS) == set(Op), "every op needs a spec"

LEAVES = frozenset({Op.TOKENS, Op.POSITIONS, Op.WEIGHT, Op.LOOP_IN})
# Ops the DSL may call by name (leaves and transfers are made by the compiler).
DSL_OPS: dict[str, Op] = {op.value: op for op in Op if op not in LEAVES and op is not Op.TRANSFER}


# ---- shape rules ----------------------------------------------------------------------------------------

DimEnv = Mapping[str, Value]


def _expect(a: Expr, b: Expr, env: DimEnv, what: str) -> None:
    if same_dim(a, b, env) is False:
        va, vb = a.eval(env), b.eval(env)
        raise ShapeError(f"{what}: {a} = {va} vs {b} = {vb}")


def _fmt(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _broadcast(a: Shape, b: Shape, env: DimEnv, op: str) -> Shape:
    if len(b) > len(a):
        a, b = b, a
    for i, (da, db) in enumerate(zip(a[len(a) - len(b):], b)):
        if da == Num(1) or db == Num(1):
            continue
        _expect(da, db, env, f"{op} of {_fmt(a)} and {_fmt(b)}, axis {i}")
    return a


def infer_shape(op: Op, shapes: Sequence[Shape | None], attrs: Mapping[str, Expr], env: DimEnv) -> Shape:
    """The output shape of op given its input shapes (None for an absent optional input), by the op's row
    of SHAPE_RULES.

    env binds whatever is known (hyperparameters); dims that can't be compared yet are accepted and
    checked again when a GGUF file binds them.
    """
    rule = _pointwise_shape if op in POINTWISE else SHAPE_RULES.get(op)
    if rule is None:
        raise ShapeError(f"no shape rule for {op.value}")
    return rule(op, shapes, attrs, env)


def _embed_shape(op, s, attrs, env) -> Shape:
    _rank(s[0], 2, "embed table")
    return s[1] + (s[0][1],)


def _matmul_shape(op, s, attrs, env) -> Shape:
    _rank(s[1], 2, "matmul weight")
    _expect(s[0][-1], s[1][1], env, f"matmul of x {_fmt(s[0])} by weight {_fmt(s[1])}: input features")
    if s[2] is not None:
        _expect(s[2][-1], s[1][0], env, f"matmul bias {_fmt(s[2])} vs weight {_fmt(s[1])}")
    return s[0][:-1] + (s[1][0],)


def _rope_shape(op, s, attrs, env) -> Shape:
    _rank(s[0], 3, "rope input (T, heads, head_dim)")
    if s[2] is not None:
        _rank(s[2], 1, "rope freq_factors (n_dims/2,)")
        _expect(s[2][0], BinOp("/", attrs["n_dims"], Num(2)), env, f"rope freq_factors {_fmt(s[2])} vs n_dims/2")
    return s[0]


def _moe_matmul_shape(op, s, attrs, env) -> Shape:
    _rank(s[1], 3, "moe_matmul weight (experts, out, in)")
    _expect(s[0][-1], s[1][2], env, f"moe_matmul of x {_fmt(s[0])} by experts {_fmt(s[1])}: features")
    return (s[0][0], s[2][-1], s[1][1])


def _weighted_sum_shape(op, s, attrs, env) -> Shape:
    _rank(s[0], 3, "weighted_sum input (T, k, n)")
    _expect(s[0][1], s[1][-1], env, f"weighted_sum of {_fmt(s[0])} by weights {_fmt(s[1])}")
    return (s[0][0], s[0][2])


def _reshape_shape(op, s, attrs, env) -> Shape:
    new = tuple(attrs["shape"])
    old_n, new_n = _try_numel(s[0], env), _try_numel(new, env)
    if old_n is not None and new_n is not None and old_n != new_n:
        raise ShapeError(f"reshape of {_fmt(s[0])} ({old_n} elements) to {_fmt(new)} ({new_n} elements)")
    return new


def _attention_shape(op, s, attrs, env) -> Shape:
    for name, shape in zip("qkv", s[:3]):
        _rank(shape, 3, f"attention {name} (T, heads, head_dim)")
    _expect(s[0][2], s[1][2], env, f"attention head size of q {_fmt(s[0])} and k {_fmt(s[1])}")
    _expect(s[1][1], s[2][1], env, f"attention kv heads of k {_fmt(s[1])} and v {_fmt(s[2])}")
    return (s[0][0], BinOp("*", s[0][1], s[2][2]))


# The shape rule of each op with a hand-written kernel; pointwise ops share _pointwise_shape.
SHAPE_RULES: dict[Op, Callable[..., Shape]] = {
    Op.TRANSFER: lambda op, s, attrs, env: s[0],
    Op.EMBED: _embed_shape,
    Op.MATMUL: _matmul_shape,
    Op.ROPE: _rope_shape,
    Op.TOPK: lambda op, s, attrs, env: s[0][:-1] + (attrs["k"],),
    Op.GATHER: lambda op, s, attrs, env: s[1],
    Op.MOE_MATMUL: _moe_matmul_shape,
    Op.WEIGHTED_SUM: _weighted_sum_shape,
    Op.RESHAPE: _reshape_shape,
    Op.ATTENTION: _attention_shape,
}


def _pointwise_shape(op, s: list, attrs: Mapping[str, Expr], env: DimEnv) -> Shape:
    """Inputs broadcast against the first (a vector (n,), or one value per row (..., 1)); a per-row op
    (mean) keeps its last axis as 1; split keeps the leading axes and takes its part's size."""
    p = definition(op)
    if op.value in pointwise.SLICING:
        sizes = attrs["sizes"]
        if not isinstance(sizes, tuple) or not sizes:
            raise ShapeError(f"{op.value} needs sizes=[d0, d1, ...]")
        part = attrs["part"]
        if not isinstance(part, Num) or not isinstance(part.value, (int, float)) or part.value != int(part.value):
            raise ShapeError(f"{op.value} part must be a whole number literal, got {part}")
        if not 0 <= int(part.value) < len(sizes):
            raise ShapeError(f"{op.value} part={int(part.value)} is out of range: sizes has {len(sizes)} parts")
        total = sizes[0]
        for d in sizes[1:]:
            total = BinOp("+", total, d)
        _expect(s[0][-1], total, env, f"{op.value} of {_fmt(s[0])} into sizes summing to {total}")
        return s[0][:-1] + (sizes[int(part.value)],)
    out = s[0]
    for name, shape in zip(p.inputs[1:], s[1:]):
        if shape is not None:
            out = _broadcast(out, shape, env, op.value)
    if pointwise.per_row(p.expr):
        return out[:-1] + (Num(1),)
    return out


def _rank(shape: Shape, rank: int, what: str) -> None:
    if len(shape) != rank:
        raise ShapeError(f"{what} must have {rank} axes, got {_fmt(shape)}")


def _try_numel(shape: Shape, env: DimEnv) -> int | None:
    from .expr import try_eval
    n = 1
    for d in shape:
        v = try_eval(d, env)
        if v is None:
            return None
        n *= int(v)
    return n


def numel(shape: Shape, env: DimEnv) -> int:
    n = 1
    for d in shape:
        n *= int(d.eval(env))
    return n
