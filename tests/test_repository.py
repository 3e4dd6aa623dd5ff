"""The repository stands on its own: docs it cites exist in it, `import llmc` works from the checkout,
every example runs, and the design card's compile command works verbatim."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def _tracked_text_files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout (an sdist): the tracked-file checks need git")
    for name in out.stdout.splitlines():
        path = ROOT / name
        if path.suffix in {".gguf", ".png", ".so"} or not path.is_file():
            continue
        try:
            yield name, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue


def test_no_file_cites_material_outside_the_repository():
    outside = re.compile(r"\.\./shared|shared/(docs|data)/")
    offenders = [name for name, text in _tracked_text_files() if outside.search(text)]
    assert offenders == []


def test_every_cited_doc_is_in_the_repository():
    """A doc named in code or docs (`numerics.md`, `docs/ascendc.md §2`) resolves to a file here."""
    doc_ref = re.compile(r"(?<![\w/.-])((?:docs/)?[A-Za-z][\w-]*\.md)\b")
    missing = set()
    for name, text in _tracked_text_files():
        for ref in doc_ref.findall(text):
            if not ((ROOT / ref).is_file() or (ROOT / "docs" / ref).is_file()):
                missing.add(f"{name}: {ref}")
    assert sorted(missing) == []


def test_import_llmc_from_the_checkout_without_an_install():
    # -S: no site-packages at all, so only the checkout can provide llmc and its subpackages.
    code = "import llmc, llmc.ir.errors, llmc.ir; print(llmc.ir.__file__)"
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve() == ROOT / "ir" / "__init__.py"


def test_compile_without_out_dir_names_a_default(tmp_path):
    shutil.copy(ROOT / "archs" / "qwen2.llmc", tmp_path / "arch.dsl")
    out = subprocess.run([sys.executable, "-m", "llmc.cli", "compile", "arch.dsl", "--target", "ascend310b"],
                         cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "artifact: arch-ascend310b" in out.stdout
    assert (tmp_path / "arch-ascend310b" / "manifest.json").is_file()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_with_no_arguments(example, tmp_path):
    out = subprocess.run([sys.executable, str(example)], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def test_every_package_and_data_file_is_installed():
    """pyproject's package list and package data cover every package folder and every non-Python file the
    code reads (templates, headers, profiles, archs): a missing entry works from the checkout and fails
    only for users of a non-editable install."""
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tools = project["tool"]["setuptools"]
    folder_of = {name: ROOT / path for name, path in tools["package-dir"].items()}

    def folder(package: str) -> Path:
        head = max((n for n in folder_of if package == n or package.startswith(n + ".")), key=len)
        return folder_of[head].joinpath(*package[len(head):].split(".")[1:])

    listed = {folder(p).resolve() for p in tools["packages"]}
    found = {init.parent.resolve() for top in folder_of.values() for init in top.rglob("__init__.py")}
    assert sorted(map(str, found - listed)) == []
    data = {f.resolve() for p, globs in tools["package-data"].items() for g in globs for f in folder(p).glob(g)}
    needed = {f.resolve() for top in folder_of.values() for f in top.rglob("*")
              if f.suffix in {".j2", ".h", ".c", ".html", ".lark", ".toml", ".llmc", ".cpp"} and f.is_file()}
    assert sorted(map(str, needed - data)) == []
