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


# ---- serialization (the manifest carries hyperparameter formulas to the runtime) ----------------------
def to_json(e: Expr):
    if isinstance(e, Num):
        return {"num": e.value}
    if isinstance(e, Name):
        return {"name": e.id}
    if isinstance(e, BinOp):
        return {"op": e.op, "l": to_json(e.left), "r": to_json(e.right)}
    if isinstance(e, Neg):
        return {"neg": to_json(e.operand)}
    if isinstance(e, Cond):
        return {"if": to_json(e.test), "then": to_json(e.then), "else": to_json(e.otherwise)}
    if isinstance(e, Call):
        return {"call": e.func, "args": [to_json(a) for a in e.args]}
    raise TypeError(f"not an expression: {e!r}")


def from_json(j) -> Expr:
    if "num" in j:
        return Num(j["num"])
    if "name" in j:
        return Name(j["name"])
    if "op" in j:
        return BinOp(j["op"], from_json(j["l"]), from_json(j["r"]))
    if "neg" in j:
        return Neg(from_json(j["neg"]))
    if "if" in j:
        return Cond(from_json(j["if"]), from_json(j["then"]), from_json(j["else"]))
    if "call" in j and j["call"] in _FUNCS:
        return Call(j["call"], tuple(from_json(a) for a in j["args"]))
    raise ValueError(f"not an expression: {j!r}")


_C_FUNCS = {"sqrt": "sqrt", "log": "log", "min": "fmin", "max": "fmax", "int": "(int)", "float": "(double)"}


def to_c(e: Expr, name: Callable[[str], str]) -> str:
    """C source for e; name() maps each free name to C (a parameter, the layer index, the token count)."""
    if isinstance(e, Num):
        if isinstance(e.value, bool):
            return "1" if e.value else "0"
        if isinstance(e.value, str):
            raise ValueError(f"a string ({e.value!r}) cannot appear in generated C")
        return repr(float(e.value)) if isinstance(e.value, float) else str(e.value)
    if isinstance(e, Name):
        return name(e.id)
    if isinstance(e, BinOp):
        op = "&&" if e.op == "and" else e.op
        if op == "%":
            return f"((long)({to_c(e.left, name)}) % (long)({to_c(e.right, name)}))"
        return f"({to_c(e.left, name)} {op} {to_c(e.right, name)})"
    if isinstance(e, Neg):
        return f"(-{to_c(e.operand, name)})"
    if isinstance(e, Cond):
        return f"({to_c(e.test, name)} ? {to_c(e.then, name)} : {to_c(e.otherwise, name)})"
    if isinstance(e, Call):
        return f"{_C_FUNCS[e.func]}({', '.join(to_c(a, name) for a in e.args)})"
    raise TypeError(f"not an expression: {e!r}")


# ---- hyperparameter formulas as C (an artifact computes its parameters without Python) ----------------
# Values there are `llmc_hp` (a number, or a string from the file's metadata): the generated file defines
# llmc_hp_<op> for every operator and function below, with Python's meaning for numbers (division of
# integers that divide exactly is exact in double, % is floor modulo, int() truncates) and for strings
# (== and != compare contents, a non-empty string is true). Where Python would raise (a string in
# arithmetic, sqrt of a negative) the C value is NaN or inf instead.
_C_HP_BINARY = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "==": "eq", "!=": "ne",
                "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "and": "and"}
_C_HP_FUNCS = {"sqrt": "sqrt", "log": "log", "min": "min", "max": "max", "int": "int", "float": "float"}
C_HP_FUNCS = frozenset(_C_HP_FUNCS)      # FUNCTIONS must be a subset (tests/cross/test_params_c.py)


def c_string(text: str) -> str:
    """A C string literal holding text's UTF-8 bytes: everything but letters, digits and a few safe
    characters is an octal escape, so no DSL or GGUF text can end the literal or form a trigraph."""
    safe = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.{}:- ")
    return '"' + "".join(chr(c) if c in safe else f"\\{c:03o}" for c in text.encode()) + '"'


def to_c_hp(e: Expr, name: Callable[[str], str]) -> str:
    """C source for e over llmc_hp values; name() maps each free name to a C expression of type llmc_hp."""
    if isinstance(e, Num):
        if isinstance(e.value, str):
            return f"llmc_hp_str({c_string(e.value)})"
        return f"llmc_hp_num({float(e.value)!r})"
    if isinstance(e, Name):
        return name(e.id)
    if isinstance(e, BinOp):
        return f"llmc_hp_{_C_HP_BINARY[e.op]}({to_c_hp(e.left, name)}, {to_c_hp(e.right, name)})"
    if isinstance(e, Neg):
        return f"llmc_hp_neg({to_c_hp(e.operand, name)})"
    if isinstance(e, Cond):
        return f"(llmc_hp_truth({to_c_hp(e.test, name)}) ? {to_c_hp(e.then, name)} : {to_c_hp(e.otherwise, name)})"
    if isinstance(e, Call):
        if e.func not in _C_HP_FUNCS:
            raise ValueError(f"{e.func}() has no C form for hyperparameters (ir/expr.py _C_HP_FUNCS)")
        args = [to_c_hp(a, name) for a in e.args]
        fn = f"llmc_hp_{_C_HP_FUNCS[e.func]}"
        if e.func in ("min", "max"):           # Python's min/max take any number of arguments
            out = args[-1]
            for a in reversed(args[:-1]):
                out = f"{fn}({a}, {out})"
            return out
        return f"{fn}({', '.join(args)})"
    raise TypeError(f"not an expression: {e!r}")
