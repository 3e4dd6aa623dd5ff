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


def _module_imports(path: pathlib.Path) -> set[str]:
    """llmc.* modules a file imports at module level or in functions (relative imports resolved)."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = ["llmc", *rel.parts[:-1]]          # the package a relative import starts from
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("llmc.")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            if base.startswith("llmc."):
                out.add(base)
                out |= {f"{base}.{a.name}" for a in node.names}
    return out


def test_codegen_core_imports_no_backend_and_codegen_has_no_import_cycle():
    import networkx as nx
    modules = {}
    for path in sorted((ROOT / "codegen").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(["llmc", *(rel.parts[:-1] if rel.name == "__init__" else rel.parts)])
        modules[name] = _module_imports(path)
    core = {m: deps for m, deps in modules.items() if m.startswith("llmc.codegen.core")}
    backends = ("llmc.codegen.c", "llmc.codegen.opencl", "llmc.codegen.ascendc")

    def in_backend(module: str) -> bool:      # a package or its modules: llmc.codegen.c, not .core
        return any(module == b or module.startswith(b + ".") for b in backends)
    assert in_backend("llmc.codegen.c.emit_c") and not in_backend("llmc.codegen.core.schedule")
    assert core and not [(m, d) for m, deps in core.items() for d in deps if in_backend(d)]
    graph = nx.DiGraph([(m, d) for m, deps in modules.items() for d in deps if d in modules])
    assert list(nx.simple_cycles(graph)) == []
