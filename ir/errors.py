"""One error family for all of llmc. Every error may carry a DSL source location.

The CLI prints `str(error)` and exits non-zero, never a traceback, for any LlmcError.
"""
from __future__ import annotations

import os
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

    def comment(self, width: int) -> str:
        """`llama.llmc:36  x = rms_norm(h, eps=eps) * attn_norm` for a generated comment: the line's text on
        one line, cut to `width` characters. It is user input, so its comment terminator is broken."""
        text = " ".join(self.text.split()).replace("*/", "* /")
        if len(text) > width:
            text = text[:width - 3] + "..."
        return f"{os.path.basename(self.file)}:{self.line}  {text}"

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
