"""One expression of a pointwise plan as a sequence of AscendC vector instructions over a UB tile.

Used by codegen/ascendc/pointwise.py, which puts these sequences into a kernel: each expression node
becomes one basic vector API call into a scratch tile (`v0`, `v1`, ... slices of one TBuf), values that
are the same for the whole row stay C++ float expressions and fold into the scalar API forms
(Adds/Muls/Maxs/Mins, Compares, Select's scalar mode). See docs/ascendc.md §9.
"""
from __future__ import annotations

from dataclasses import dataclass

from llmc.codegen.core.pointwise import literal
from llmc.ir.pointwise import E

from .kernels import AscendCodegenError


class Unsupported(AscendCodegenError):
    """The plan uses an expression the AscendC generator has no instruction sequence for."""


# ---- values while printing ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scalar:
    code: str            # a C++ float expression


@dataclass(frozen=True)
class Tensor:
    name: str            # a LocalTensor<float> variable


@dataclass(frozen=True)
class Cond:
    """A comparison, kept until `where` prints it (the mask's sense depends on which branch is a tensor)."""
    mode: str            # "LE" or "GE"
    lhs: object
    rhs: object


_FLIP = {"LE": "GT", "GE": "LT", "GT": "LE", "LT": "GE"}      # not (a LE b) == (a GT b)
_SWAP = {"LE": "GE", "GE": "LE"}                             # (s LE x) == (x GE s)
_TENSOR_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "max": "Max", "min": "Min"}
_C_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


class Block:
    """Prints one expression's instruction sequence over `count` elements into `lines`; temporaries are
    slices of the scratch TBuf, numbered from 0 for each expression (the plan's widest needs `temps`)."""

    def __init__(self, count: str, pad_count: str, operands: dict[str, object], lines: list[str], indent: str):
        self.count, self.pad_count = count, pad_count
        self.operands = operands        # operand name -> Tensor (loaded tile) or Scalar (per-row value)
        self.lines, self.indent = lines, indent
        self.temps = 0
        self.masks = 0
        self.seen: dict[E, object] = {}

    def emit(self, line: str) -> None:
        self.lines.append(self.indent + line)

    def temp(self) -> Tensor:
        t = Tensor(f"v{self.temps}")
        self.emit(f"LocalTensor<float> {t.name} = scratch_[{self.temps} * tiling_.tileLength];")
        self.temps += 1
        return t

    def tensor(self, v) -> Tensor:
        if isinstance(v, Tensor):
            return v
        t = self.temp()
        self.emit(f"Duplicate({t.name}, {v.code}, {self.count});")
        return t

    def __call__(self, e: E):
        if e not in self.seen:
            self.seen[e] = self._value(e)
        return self.seen[e]

    def _value(self, e: E):
        k, a = e.kind, e.args
        if k == "in":
            return self.operands[e.value]
        if k == "attr":
            return Scalar(f"tiling_.{e.value}")
        if k == "tmp":
            return Scalar(e.value)
        if k == "cols":
            return Scalar("static_cast<float>(tiling_.n)")
        if k == "const":
            return Scalar(literal(e.value))
        if k in ("to_f32", "to_f64"):
            return self(a[0])         # one float type on the vector unit (see the module note)
        if k == "neg":
            x = self(a[0])
            if isinstance(x, Scalar):
                return Scalar(f"(-{x.code})")
            t = self.temp()
            self.emit(f"Muls({t.name}, {x.name}, -1.0f, {self.count});")
            return t
        if k in ("exp", "sqrt"):
            x = self.tensor(self(a[0]))
            t = self.temp()
            self.emit(f"{k.capitalize()}({t.name}, {x.name}, {self.count});")
            return t
        if k == "tanh":
            # tanh x = 1 - 2 / (exp(2x) + 1): exact limits ±1, no overflow to NaN (exp -> inf gives 1)
            x = self.tensor(self(a[0]))
            t = self.temp()
            self.emit(f"Muls({t.name}, {x.name}, 2.0f, {self.count});")
            self.emit(f"Exp({t.name}, {t.name}, {self.count});")
            self.emit(f"Adds({t.name}, {t.name}, 1.0f, {self.count});")
            two = self.temp()
            self.emit(f"Duplicate({two.name}, 2.0f, {self.count});")
            self.emit(f"Div({t.name}, {two.name}, {t.name}, {self.count});")
            self.emit(f"Muls({t.name}, {t.name}, -1.0f, {self.count});")
            self.emit(f"Adds({t.name}, {t.name}, 1.0f, {self.count});")
            return t
        if k == "to_f16":
            # round to half (nearest even: CAST_NONE) and back, as ggml's f16 tables read their input
            x = self.tensor(self(a[0]))
            h, t = self.temp(), self.temp()
            self.emit(f"Cast({h.name}.ReinterpretCast<half>(), {x.name}, RoundMode::CAST_NONE, {self.count});")
            self.emit(f"Cast({t.name}, {h.name}.ReinterpretCast<half>(), RoundMode::CAST_NONE, {self.count});")
            return t
        if k in ("le", "ge"):
            return Cond(k.upper(), self(a[0]), self(a[1]))
        if k == "where":
            return self._where(self(a[0]), self(a[1]), self(a[2]))
        if k in _TENSOR_BINARY:
            return self._binary(k, self(a[0]), self(a[1]))
        if k == "erf":
            raise Unsupported("erf has no AscendC vector instruction")
        raise Unsupported(f"cannot print expression node {k!r} as AscendC")

    def _binary(self, k: str, x, y):
        if isinstance(x, Scalar) and isinstance(y, Scalar):
            if k in _C_BINARY:
                return Scalar(f"({x.code} {_C_BINARY[k]} {y.code})")
            cmp = ">" if k == "max" else "<"
            return Scalar(f"({x.code} {cmp} {y.code} ? {x.code} : {y.code})")
        t = self.temp()
        n = self.count
        if isinstance(x, Tensor) and isinstance(y, Tensor):
            self.emit(f"{_TENSOR_BINARY[k]}({t.name}, {x.name}, {y.name}, {n});")
        elif k in ("add", "mul", "max", "min"):      # commutative: the tensor goes first
            tens, s = (x, y) if isinstance(x, Tensor) else (y, x)
            self.emit(f"{_TENSOR_BINARY[k]}s({t.name}, {tens.name}, {s.code}, {n});")
        elif k == "sub" and isinstance(x, Tensor):
            self.emit(f"Adds({t.name}, {x.name}, -({y.code}), {n});")
        elif k == "sub":                              # s - x = (-x) + s, the same rounding
            self.emit(f"Muls({t.name}, {y.name}, -1.0f, {n});")
            self.emit(f"Adds({t.name}, {t.name}, {x.code}, {n});")
        else:                                         # a true division, not a multiply by the reciprocal
            self.emit(f"Duplicate({t.name}, {(x if isinstance(x, Scalar) else y).code}, {n});")
            args = (t.name, y.name) if isinstance(x, Scalar) else (x.name, t.name)
            self.emit(f"Div({t.name}, {args[0]}, {args[1]}, {n});")
        return t

    def _where(self, c, a, b):
        if not isinstance(c, Cond):
            raise Unsupported(f"where on a non-comparison {c!r}")
        lhs, rhs, mode = c.lhs, c.rhs, c.mode
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            # the same for the whole row: pick a branch (both were computed; the other is dropped)
            cond = f"({lhs.code} {'<=' if mode == 'LE' else '>='} {rhs.code})"
            if isinstance(a, Scalar) and isinstance(b, Scalar):
                return Scalar(f"({cond} ? {a.code} : {b.code})")
            ta, tb = self.tensor(a), self.tensor(b)
            t = Tensor(f"pick{len(self.seen)}")
            self.emit(f"LocalTensor<float> {t.name} = {cond} ? {ta.name} : {tb.name};")
            return t
        if isinstance(lhs, Scalar):
            lhs, rhs, mode = rhs, lhs, _SWAP[mode]
        if isinstance(a, Scalar) and isinstance(b, Scalar):
            a = self.tensor(a)
        if isinstance(a, Scalar):                    # Select takes its scalar second: flip the mask
            a, b, mode = b, a, _FLIP[mode]
        mask = f"mask_[{self.masks} * maskBytes_]"
        self.masks += 1
        pc = self.pad_count
        if isinstance(rhs, Scalar):
            self.emit(f"Compares({mask}, {lhs.name}, static_cast<float>({rhs.code}), CMPMODE::{mode}, {pc});")
        else:
            self.emit(f"Compare({mask}, {lhs.name}, {rhs.name}, CMPMODE::{mode}, {pc});")
        t = self.temp()
        if isinstance(b, Scalar):
            self.emit(f"Select({t.name}, {mask}, {a.name}, static_cast<float>({b.code}), "
                      f"SELMODE::VSEL_TENSOR_SCALAR_MODE, {pc});")
        else:
            self.emit(f"Select({t.name}, {mask}, {a.name}, {b.name}, SELMODE::VSEL_TENSOR_TENSOR_MODE, {pc});")
        return t
