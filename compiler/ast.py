"""The DSL's syntax tree: small frozen dataclasses, each with its source location."""
from __future__ import annotations

from dataclasses import dataclass

from llmc.ir.errors import SourceLoc


# ---- expressions ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ENum:
    value: int | float
    loc: SourceLoc


@dataclass(frozen=True)
class EStr:
    value: str
    loc: SourceLoc


@dataclass(frozen=True)
class EName:
    id: str
    loc: SourceLoc


@dataclass(frozen=True)
class EBin:
    op: str
    left: "Expr"
    right: "Expr"
    loc: SourceLoc


@dataclass(frozen=True)
class ENeg:
    operand: "Expr"
    loc: SourceLoc


@dataclass(frozen=True)
class EIf:
    test: "Expr"
    then: "Expr"
    otherwise: "Expr"
    loc: SourceLoc


@dataclass(frozen=True)
class EList:
    items: tuple["Expr", ...]
    loc: SourceLoc


@dataclass(frozen=True)
class KwArg:
    name: str
    value: "Expr"
    loc: SourceLoc


@dataclass(frozen=True)
class ECall:
    func: str
    args: tuple["Expr", ...]
    kwargs: tuple[KwArg, ...]
    loc: SourceLoc


Expr = ENum | EStr | EName | EBin | ENeg | EIf | EList | ECall


# ---- statements -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamDecl:
    name: str
    value: Expr
    loc: SourceLoc


@dataclass(frozen=True)
class GgufChoice:
    """`"then" if test else ...` in a weight declaration: the tensor named `then` is bound instead when
    `test` holds at load time (it may read n_ctx, the context the model is loaded with)."""
    test: Expr
    then: str
    then_loc: SourceLoc


@dataclass(frozen=True)
class WeightDecl:
    name: str
    gguf_name: str
    shape: tuple[Expr, ...]
    optional: bool
    fallback: str | None
    loc: SourceLoc
    gguf_loc: SourceLoc
    choice: GgufChoice | None = None


@dataclass(frozen=True)
class InputDecl:
    name: str
    loc: SourceLoc


@dataclass(frozen=True)
class Assign:
    name: str
    value: Expr
    loc: SourceLoc


@dataclass(frozen=True)
class OutputDecl:
    name: str
    value: Expr
    loc: SourceLoc


@dataclass(frozen=True)
class LayerBlock:
    var: str
    count: Expr
    items: tuple["Item", ...]
    loc: SourceLoc


Item = ParamDecl | WeightDecl | InputDecl | Assign | OutputDecl | LayerBlock


@dataclass(frozen=True)
class Module:
    arch: str
    items: tuple[Item, ...]
    file: str
