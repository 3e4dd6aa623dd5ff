"""One error family for all of llmc. Every error may carry a DSL source location.

The CLI prints `str(error)` and exits non-zero, never a traceback, for any LlmcError.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLoc:
    """A place in a DSL file: 1-based line and column, and the text of that line for the caret display."""
    file: str
    line: int
    col: int
    text: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def caret(self) -> str:
        if not self.text:
            return ""
        return f"    {self.text}\n    {' ' * (self.col - 1)}^"


class LlmcError(Exception):
    """Base of every error a user can cause: bad DSL, bad GGUF, bad profile, bad target."""

    def __init__(self, message: str, loc: SourceLoc | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc

    def __str__(self) -> str:
        if self.loc is None:
            return self.message
        caret = self.loc.caret()
        return f"{self.loc}: {self.message}" + (f"\n{caret}" if caret else "")


class DslError(LlmcError):
    """The architecture description is wrong: syntax, unknown names, arity, shapes."""


class BindError(LlmcError):
    """A GGUF file does not fit the architecture: missing key or tensor, wrong shape, type or arch."""
