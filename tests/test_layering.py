"""Imports follow the data flow: ir/ imports nothing of ours; runtime/ never imports compiler/ or codegen/."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = {"ir": ("llmc.compiler", "llmc.codegen", "llmc.runtime", "llmc.cli", "llmc.oracle"),
             "runtime": ("llmc.compiler", "llmc.codegen")}


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_follow_the_data_flow(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in _imports(path):
            if module.startswith(FORBIDDEN[package]) or (package == "ir" and module == "llmc"):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, "\n".join(bad)
