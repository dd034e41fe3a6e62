"""Each dvc.yaml stage lists exactly the project source files its command runs.

The files are derived, not copied: from the module in the stage's `python -m ...` command, every
import of a project module (at any depth in the file, so imports inside functions count) is followed
transitively. A stage listing fewer files would not rerun when one of the others changes; a stage
listing more would rerun for nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

SRC = ROOT / "src"
PACKAGE = "mlops_rakuten"


def module_file(name: str) -> Path | None:
    """The source file of project module ``name`` (a package's __init__.py), or None if not one."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, name: str) -> set[str]:
    """Names of the modules ``path`` (module ``name``) imports, project or not, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            found.add(base)
            # `from package import module` imports a module, not a name.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def executed_modules(name: str) -> dict[str, Path]:
    """Every project module that `python -m name` runs, transitively, as name -> file.

    Importing a.b.c also runs the packages a and a.b; they are included here and filtered by
    the caller.
    """
    seen: dict[str, Path] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        parts = current.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            path = module_file(prefix)
            if path is None or prefix in seen:
                continue
            seen[prefix] = path
            todo.extend(imported_modules(path, prefix))
    return seen


def only_docstring_and_constants(path: Path) -> bool:
    """True for a package __init__.py that holds nothing a stage could depend on."""
    for statement in ast.parse(path.read_text()).body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant):
            continue
        return False
    return True


def stage_sources(command: str) -> set[str]:
    """The src/ files, relative to the repository, that the stage command runs."""
    match = re.match(r"python -m ([\w.]+)\s", command)
    assert match, f"expected the stage command to start with `python -m <module>`: {command!r}"
    files = set()
    for path in executed_modules(match.group(1)).values():
        # A package's __init__.py runs too, but holding only a docstring and constants it cannot
        # change what a stage computes; if one ever holds code, it must be listed like any module.
        if path.name == "__init__.py" and only_docstring_and_constants(path):
            continue
        files.add(path.relative_to(ROOT).as_posix())
    return files


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_list_exactly_the_source_files_its_command_runs(stage: str):
    entry = STAGES[stage]
    listed = {dep for dep in entry["deps"] if dep.startswith("src/")}
    derived = stage_sources(entry["cmd"])
    assert not derived - listed, f"dvc.yaml stage {stage} runs but does not list: {sorted(derived - listed)}"
    assert not listed - derived, f"dvc.yaml stage {stage} lists but does not run: {sorted(listed - derived)}"


def test_derivation_follows_imports_inside_functions_and_from_package_imports(tmp_path: Path):
    # The train stage reaches the solver only through `from mlops_rakuten.core import newton_svm` in the
    # one-vs-rest trainer: the derivation must see it, or this test proves nothing for the solver.
    sources = stage_sources(STAGES["train"]["cmd"])
    assert any(path.endswith("/newton_svm.py") for path in sources), sorted(sources)
    text = "def f():\n    from mlops_rakuten.core import params\n"
    (tmp_path / "m.py").write_text(text)
    assert "mlops_rakuten.core.params" in imported_modules(tmp_path / "m.py", "mlops_rakuten.m")
