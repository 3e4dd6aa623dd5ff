"""DSL text -> AST. Lark LALR with positions; lark's errors are rewrapped as DslError with file:line:col."""
from __future__ import annotations

import os
from functools import lru_cache

import lark
from lark import Token, Transformer, v_args

from llmc.ir.errors import DslError, SourceLoc

from . import ast

_GRAMMAR = os.path.join(os.path.dirname(__file__), "grammar.lark")

# Human names for lark's terminal names, used in "expected ..." messages.
_TOKEN_NAMES = {
    "NAME": "a name", "STRING": "a string", "NUMBER": "a number", "LPAR": "'('", "RPAR": "')'",
    "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','", "EQUAL": "'='",
    "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/' or '%'", "COMPARE": "a comparison", "MINUS": "'-'",
    "$END": "the end of the file", "OPTIONAL": "'optional'",
}


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    """The LALR parser; building its tables takes ~0.2 s, so lark keeps them in the llmc cache, keyed by the
    grammar's text and lark's version (a changed grammar makes a new file)."""
    from llmc.fetch import cache_dir
    tables = os.path.join(cache_dir(), "lark")
    os.makedirs(tables, exist_ok=True)
    with open(_GRAMMAR) as f:
        return lark.Lark(f.read(), parser="lalr", propagate_positions=True, maybe_placeholders=True,
                         cache=os.path.join(tables, f"grammar-{lark.__version__}.cache"))


class _ToAst(Transformer):
    """Builds AST nodes. Every grammar rule that survives in the tree has a method here; an unknown rule
    raises rather than passing a lark Tree through."""

    def __init__(self, file: str, lines: list[str]):
        super().__init__(visit_tokens=False)
        self.file, self.lines = file, lines

    def _loc(self, item) -> SourceLoc:
        line = getattr(item, "line", None) or getattr(getattr(item, "meta", None), "line", 1)
        col = getattr(item, "column", None) or getattr(getattr(item, "meta", None), "column", 1)
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return SourceLoc(self.file, line, col, text)

    def __default__(self, data, children, meta):
        raise DslError(f"internal: the grammar rule {data!r} has no AST builder")

    @v_args(meta=True)
    def start(self, meta, children):
        return children

    def arch_decl(self, children):
        return ("arch", children[0][1:-1])

    @v_args(meta=True)
    def param_decl(self, meta, c):
        return ast.ParamDecl(str(c[0]), c[1], self._loc(c[0]))

    @v_args(meta=True)
    def weight_decl(self, meta, c):
        optional, name, gguf, choice, shape, fallback = c
        if choice is None:
            return ast.WeightDecl(str(name), gguf[1:-1], shape.items, optional is not None,
                                  fallback, self._loc(name), self._loc(gguf))
        test, otherwise = choice          # `"a" if test else "b"`: b is the name bound unless test holds
        return ast.WeightDecl(str(name), otherwise[1:-1], shape.items, optional is not None, fallback,
                              self._loc(name), self._loc(otherwise), ast.GgufChoice(test, gguf[1:-1], self._loc(gguf)))

    def gguf_choice(self, c):
        return c[0], c[1]

    def fallback(self, c):
        return str(c[0])

    @v_args(meta=True)
    def shape(self, meta, c):
        return ast.EList(tuple(x for x in c if x is not None), self._loc(meta))

    def input_decl(self, c):
        return ast.InputDecl(str(c[0]), self._loc(c[0]))

    @v_args(meta=True)
    def layer_block(self, meta, c):
        return ast.LayerBlock(str(c[0]), c[1], tuple(c[2:]), self._loc(meta))

    def assign(self, c):
        return ast.Assign(str(c[0]), c[1], self._loc(c[0]))

    def output_decl(self, c):
        return ast.OutputDecl(str(c[0]), c[1], self._loc(c[0]))

    @v_args(meta=True)
    def ifelse(self, meta, c):
        return ast.EIf(c[1], c[0], c[2], self._loc(meta))

    @v_args(meta=True)
    def and_(self, meta, c):
        return ast.EBin("and", c[0], c[1], self._loc(meta))

    def compare(self, c):
        return ast.EBin(str(c[1]), c[0], c[2], self._loc(c[1]))

    def binop(self, c):
        return ast.EBin(str(c[1]), c[0], c[2], self._loc(c[1]))

    @v_args(meta=True)
    def neg(self, meta, c):
        return ast.ENeg(c[0], self._loc(meta))

    def number(self, c):
        text = str(c[0])
        value = float(text) if any(ch in text for ch in ".eE") else int(text)
        return ast.ENum(value, self._loc(c[0]))

    def string(self, c):
        return ast.EStr(str(c[0])[1:-1], self._loc(c[0]))

    def name(self, c):
        return ast.EName(str(c[0]), self._loc(c[0]))

    def call(self, c):
        args = [a for a in c[1:] if a is not None]
        pos = tuple(a for a in args if not isinstance(a, ast.KwArg))
        kws = tuple(a for a in args if isinstance(a, ast.KwArg))
        return ast.ECall(str(c[0]), pos, kws, self._loc(c[0]))

    def kwarg(self, c):
        return ast.KwArg(str(c[0]), c[1], self._loc(c[0]))


def parse(text: str, file: str = "<string>") -> ast.Module:
    lines = text.splitlines()
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        line, col = getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1
        loc = SourceLoc(file, line, col, lines[line - 1] if 0 < line <= len(lines) else "")
        if isinstance(exc, lark.exceptions.UnexpectedToken):
            expected = sorted(_TOKEN_NAMES.get(t, repr(t.lower()) if t.isupper() else t) for t in exc.expected)
            got = "the end of the file" if exc.token.type == "$END" else repr(str(exc.token))
            raise DslError(f"syntax error: unexpected {got}; expected {', '.join(expected[:8])}", loc) from None
        if isinstance(exc, lark.exceptions.UnexpectedCharacters):
            raise DslError(f"syntax error: unexpected character {exc.char!r}", loc) from None
        raise DslError("syntax error: unexpected end of input", loc) from None
    try:
        items = _ToAst(file, lines).transform(tree)
    except lark.exceptions.VisitError as exc:
        raise exc.orig_exc from None
    _, arch = items[0]
    return ast.Module(arch, tuple(items[1:]), file)


def parse_file(path: str) -> ast.Module:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise DslError(f"{path}: cannot read the architecture file: {exc.strerror}") from None
    return parse(text, path)


__all__ = ["parse", "parse_file", "Token"]
