"""Scalar expressions: dimensions, hyperparameter formulas, op attributes and per-layer conditions.

They are small frozen trees so that a shape such as (T, n_head * head_dim) stays symbolic until a GGUF
file binds the hyperparameters, and so that codegen can print them as C (`hp->n_head * hp->head_dim`).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Callable, Mapping, Union

Value = Union[int, float, bool, str]

_BINARY: dict[str, Callable] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "%": operator.mod,
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge, "and": lambda a, b: bool(a) and bool(b),
}
_FUNCS: dict[str, Callable] = {
    "sqrt": math.sqrt, "log": math.log, "min": min, "max": max, "int": int, "float": float,
}


class UnboundName(KeyError):
    """An expression names something the environment does not hold."""


class Expr:
    """Base class. Subclasses are frozen dataclasses."""

    def eval(self, env: Mapping[str, Value]) -> Value:
        raise NotImplementedError

    def names(self) -> set[str]:
        raise NotImplementedError


@dataclass(frozen=True)
class Num(Expr):
    value: Value

    def eval(self, env):
        return self.value

    def names(self):
        return set()

    def __str__(self):
        return repr(self.value) if isinstance(self.value, str) else str(self.value)


@dataclass(frozen=True)
class Name(Expr):
    id: str

    def eval(self, env):
        if self.id not in env:
            raise UnboundName(self.id)
        return env[self.id]

    def names(self):
        return {self.id}

    def __str__(self):
        return self.id


@dataclass(frozen=True)
class BinOp(Expr):
    op: str
    left: Expr
    right: Expr

    def eval(self, env):
        a, b = self.left.eval(env), self.right.eval(env)
        if self.op == "/":
            # Integer division of integers (dims); true division once a float is involved.
            if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
                if b == 0 or a % b:
                    return a / b if b else math.inf
                return a // b
            return a / b
        return _BINARY[self.op](a, b)

    def names(self):
        return self.left.names() | self.right.names()

    def __str__(self):
        return f"({self.left} {self.op} {self.right})"


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr

    def eval(self, env):
        return -self.operand.eval(env)

    def names(self):
        return self.operand.names()

    def __str__(self):
        return f"-{self.operand}"


@dataclass(frozen=True)
class Cond(Expr):
    """`then if test else otherwise`; with the layer index in the test it is a per-layer choice."""
    test: Expr
    then: Expr
    otherwise: Expr

    def eval(self, env):
        return self.then.eval(env) if self.test.eval(env) else self.otherwise.eval(env)

    def names(self):
        return self.test.names() | self.then.names() | self.otherwise.names()

    def __str__(self):
        return f"({self.then} if {self.test} else {self.otherwise})"


@dataclass(frozen=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]

    def eval(self, env):
        return _FUNCS[self.func](*(a.eval(env) for a in self.args))

    def names(self):
        return set().union(*(a.names() for a in self.args)) if self.args else set()

    def __str__(self):
        return f"{self.func}({', '.join(str(a) for a in self.args)})"


FUNCTIONS = frozenset(_FUNCS)


def as_expr(value: Expr | Value) -> Expr:
    return value if isinstance(value, Expr) else Num(value)


def try_eval(expr: Expr, env: Mapping[str, Value]) -> Value | None:
    """The value of expr if every name it uses is bound, else None."""
    try:
        return expr.eval(env)
    except UnboundName:
        return None


def same_dim(a: Expr, b: Expr, env: Mapping[str, Value]) -> bool | None:
    """True/False when two dims are provably equal/different under env; None when it can't be known yet."""
    if a == b:
        return True
    va, vb = try_eval(a, env), try_eval(b, env)
    if va is None or vb is None:
        return None
    return va == vb
