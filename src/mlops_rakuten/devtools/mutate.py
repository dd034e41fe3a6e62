"""`make mutate`: mutation testing of the modules that decide something, each against its own fast tests.

For each module of MODULES, mutmut (pyproject.toml's [tool.mutmut] holds the settings shared by
every run) changes one thing at a time in the module (`>=` to `>`, a constant, an argument, a
return value) and runs the module's unit tests on each mutant: a mutant the tests pass is a
behaviour nobody checks. The runs happen in a scratch copy of src/ and tests/, never in the work
tree, so a mutant can neither be committed nor seen by anyone else's tests.

Why mutmut and not cosmic-ray: cosmic-ray writes each mutant into the source file itself, here a
work tree others edit and test at the same time; mutmut mutates a copy, and runs on each mutant
only the tests that reached its function (recorded in one instrumented run), in a forked process
rather than a new interpreter. mutmut changes function bodies only: module-level constants (all of
gate.py) make no mutant.

    python -m mlops_rakuten.devtools.mutate                  # every module
    python -m mlops_rakuten.devtools.mutate serve/auth.py    # one module

Prints the score per module and overall, and each surviving mutant as file:line and the change.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mlops_rakuten.devtools.mutate_equivalent import EQUIVALENT

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = "src/mlops_rakuten"

# Module (under src/mlops_rakuten/) -> the fast unit tests that guard it. No test here starts a
# server: mutmut runs the tests of a function once per mutant of it.
MODULES: dict[str, tuple[str, ...]] = {
    "serve/auth.py": ("tests/test_tokens.py",),
    "serve/users.py": ("tests/test_users_file.py",),
    "serve/login_limits.py": ("tests/test_login_limits.py",),
    "ops/registry.py": ("tests/test_registry_checks.py", "tests/test_registry_register.py"),
    "monitoring/signals.py": ("tests/test_drift_significance.py",),
    "monitoring/significance.py": ("tests/test_drift_significance.py",),
    "monitoring/drift.py": ("tests/test_drift_window.py",),
    # Constants only: mutmut mutates function bodies, so it makes no mutant here; the slices'
    # boundary tests import these numbers and test_docs_facts holds them to the docs.
    "monitoring/gate.py": ("tests/test_retrain_decision.py",),
    "monitoring/comparison.py": ("tests/test_retrain_report.py",),
    "monitoring/slices.py": ("tests/test_retrain_decision.py", "tests/test_retrain_slices.py"),
}

KILLED = {1, 3, 24, -24, 36, 37, 152, 255, -9, -11}  # test failed, timed out, or crashed: detected
NO_TESTS = {5, 33}


@dataclass
class Survivor:
    location: str  # path:line
    before: str
    after: str
    status: str
    equivalent: str | None = None  # why, if it is a known equivalent mutant


@dataclass
class Score:
    module: str
    mutants: int = 0
    killed: int = 0
    survivors: list[Survivor] = field(default_factory=list)

    @property
    def equivalent(self) -> int:
        return sum(1 for s in self.survivors if s.equivalent)

    @property
    def judged(self) -> int:
        return self.mutants - self.equivalent

    def percent(self) -> float:
        return 100.0 * self.killed / self.judged if self.judged else 100.0


def workdir_config(module: str, tests: tuple[str, ...]) -> str:
    """The scratch copy's pyproject.toml: the project's pytest settings, its [tool.mutmut] plus this module's."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    mutmut = {
        **tool.get("mutmut", {}),
        "source_paths": ["src"],
        "only_mutate": [f"{PACKAGE}/{module}"],
        "pytest_add_cli_args_test_selection": list(tests),
    }
    lines = []
    for table, values in (("tool.pytest.ini_options", tool["pytest"]["ini_options"]), ("tool.mutmut", mutmut)):
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]  # JSON values are valid TOML
    return "\n".join(lines) + "\n"


def prepare(work: Path, module: str, tests: tuple[str, ...]) -> None:
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / PACKAGE, work / PACKAGE, ignore=skip)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=skip)
    (work / "pyproject.toml").write_text(workdir_config(module, tests))


def function_span(source: str, mutant: str) -> tuple[int, int]:
    """First and last line of the function a mutant name points to (``x_name`` or ``xǁClassǁmethod``)."""
    qualified = mutant.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
    names = qualified[2:].split("ǁ") if qualified.startswith("xǁ") else [qualified[2:]]
    nodes: list[ast.stmt] = ast.parse(source).body
    found: ast.stmt | None = None
    for name in names:
        found = next(
            n for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name
        )
        nodes = found.body
    assert found is not None and found.end_lineno is not None
    return found.lineno, found.end_lineno


def survivor(path: str, mutant: str, status: str, module: str) -> Survivor:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    diff = get_diff_for_mutant(mutant, path=path).splitlines()
    before = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    after = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    source = Path(path).read_text().splitlines()
    start, end = function_span("\n".join(source), mutant)
    first = before[0] if before else ""
    line = next((n for n in range(start, end + 1) if source[n - 1] == first), start)
    old, new = " / ".join(s.strip() for s in before), " / ".join(s.strip() for s in after)
    why = next((w for m, b, a, w in EQUIVALENT if m == module and b in old and any(x in new for x in a)), None)
    return Survivor(f"{path}:{line}", old, new, status, why)


def score(work: Path, module: str) -> Score:
    from mutmut.configuration import reset_config
    from mutmut.stats import status_by_exit_code

    path = f"{PACKAGE}/{module}"
    meta = json.loads((work / "mutants" / f"{path}.meta").read_text())["exit_code_by_key"]
    result = Score(module, mutants=len(meta))
    with contextlib.chdir(work):
        reset_config()
        for mutant, code in sorted(meta.items(), key=lambda item: int(item[0].rsplit("_", 1)[1])):
            if code in KILLED:
                result.killed += 1
                continue
            status = "no test reaches it" if code in NO_TESTS else status_by_exit_code[code]
            result.survivors.append(survivor(path, mutant, status, module))
    result.survivors.sort(key=lambda v: int(v.location.rsplit(":", 1)[1]))
    return result


def mutate(module: str, scratch: Path, children: int) -> Score:
    tests = MODULES[module]
    work = scratch / module.replace("/", "-").removesuffix(".py")
    prepare(work, module, tests)
    log = work / "mutmut.log"
    with open(log, "w") as output:
        done = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(children)],
            cwd=work,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    if not (work / "mutants" / f"{PACKAGE}/{module}.meta").is_file():
        if done.returncode == 0:  # nothing to mutate (constants only): mutmut writes no results
            return Score(module)
        sys.exit(f"mutmut failed on {module} (exit {done.returncode}); its log:\n{log.read_text()[-4000:]}")
    return score(work, module)


def total(scores: list[Score]) -> Score:
    overall = Score("all", sum(s.mutants for s in scores), sum(s.killed for s in scores))
    overall.survivors = [v for s in scores for v in s.survivors]
    return overall


def table(scores: list[Score]) -> list[str]:
    lines = ["| module | mutants | killed | equivalent | score |", "| --- | ---: | ---: | ---: | ---: |"]
    for s in [*scores, total(scores)]:
        score = f"{s.percent():.1f} %" if s.judged else "no mutant"  # constants only: nothing to mutate
        lines.append(f"| {s.module} | {s.mutants} | {s.killed} | {s.equivalent} | {score} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (`mutmut browse` works there)")
    parser.add_argument("--fail-under", type=float, default=0.0, help="exit 1 if the overall score is lower")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"not a mutated module: {', '.join(unknown)} (choose from {', '.join(MODULES)})")
    start = time.monotonic()
    scores = []
    with contextlib.ExitStack() as stack:
        scratch = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mutate-")))
        for module in args.modules or MODULES:
            begun = time.monotonic()
            s = mutate(module, scratch, args.children)
            scores.append(s)
            print(f"{module}: {s.killed}/{s.judged} killed in {time.monotonic() - begun:.0f} s", flush=True)
    print("\nSurviving mutants (file:line  before  ->  after):")
    for v in total(scores).survivors:
        label = f"equivalent: {v.equivalent}" if v.equivalent else v.status
        print(f"  {v.location}  {v.before}  ->  {v.after}  ({label})")
    print("", *table(scores), f"\n{len(scores)} module(s) in {time.monotonic() - start:.0f} s", sep="\n")
    return 1 if total(scores).percent() < args.fail_under else 0


if __name__ == "__main__":
    sys.exit(main())
