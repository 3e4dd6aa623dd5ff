"""The artifact's hyperparameters in C: `llmc_params.c` computes what the DSL's `param` lines say from a
GGUF file (metadata keys with defaults, tensor dims, derived formulas), so a board runs a model without
Python (bin/llmc-run). The formulas are printed from the IR by ir/expr.py (to_c_hp), the one definition
of the formula language; runtime/artifact.py evaluates the same formulas in Python, and
tests/cross/test_params_c.py checks that both agree.
"""
from __future__ import annotations

import math
from typing import Any

import jinja2

from llmc.ir import expr as X
from llmc.ir.graph import Graph

from .matmul import TEMPLATE_DIR

SOURCE = "llmc_params.c"
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), undefined=jinja2.StrictUndefined,
                          keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def render_params_c(graph: Graph, specialized: dict[str, Any] | None = None) -> str:
    """C source of llmc_model_params() for this graph's parameters (in declaration order)."""
    index: dict[str, int] = {}

    def ref(name: str) -> str:
        if name not in index:
            raise ValueError(f"a hyperparameter formula uses {name!r} before it is defined")
        return f"v[{index[name]}]"

    params = []
    for p in graph.params.values():
        row = {"name": p.name, "loc": _comment(str(p.loc)) if p.loc else "",
               "where": X.c_string(f" ({p.loc})" if p.loc else ""),
               "meta_key": None, "default": None, "tensor": None, "axis": 0, "expr": None, "layers_key": None}
        if p.meta_key is not None:
            row["meta_key"] = X.c_string(p.meta_key.replace("{arch}", graph.arch))
            if p.flags_as_period:       # per-layer flags over the file's block count (ir/bind.py flags_period)
                row["layers_key"] = X.c_string(f"{graph.arch}.block_count")
            row["default"] = X.to_c_hp(p.default, ref) if p.default is not None else None
        elif p.tensor_dim is not None:
            row["tensor"], row["axis"] = X.c_string(p.tensor_dim[0]), int(p.tensor_dim[1])
        else:
            row["expr"] = X.to_c_hp(p.expr, ref)
        if not p.name.isidentifier() or not p.name.isascii():
            raise ValueError(f"parameter name {p.name!r} is not a C identifier")
        params.append(row)
        index[p.name] = len(index)
    spec = []
    if specialized:
        spec = [(name, index[name], _c_double(value)) for name, value in specialized["params"].items()
                if name in index and not math.isnan(value)]
    return _ENV.get_template("params.c.j2").render(
        arch=_comment(graph.arch), arch_c=X.c_string(graph.arch), source=_comment(graph.source), params=params, specialized=spec,
        spec_file=X.c_string(specialized["file"]) if specialized else '""')


def _c_double(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else ("INFINITY" if value > 0 else "(-INFINITY)")


def _comment(text: str) -> str:
    """Text that cannot end or break the C comment it is printed in."""
    return text.replace("*/", "* /").replace("\n", " ")
