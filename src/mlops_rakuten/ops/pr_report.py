"""The pull-request report: params, metrics and confusion matrices of the workspace against a base.

Markdown for a person: the params that changed first (the others folded
away), the headline metrics with their change, per-class F1 by class name, and
both confusion matrices as images. Numbers come from ``dvc params diff`` and
``dvc metrics diff``, so they are exactly what those commands show.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from mlops_rakuten.core.atomic import atomic_path
from mlops_rakuten.core.categories import CLASSES, category_label
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.params import flatten_params
from mlops_rakuten.core.paths import CLASS_METRICS, CONFUSION_PLOT, METRICS, PARAMS
from mlops_rakuten.ops.commands import dvc, git, run
from mlops_rakuten.ops.plot_images import plot_images

# The one hidden line the PR workflow looks for to update its comment instead of adding another.
MARKER = "<!-- rakuten-pr-report -->"
# Where a local report puts the base's committed plot so it can show it (git-ignored).
BASE_PLOTS = Path(".pr-report")


def _resolve(rev: str, cwd: Path | None) -> str:
    result = run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd, check=False)
    if result.returncode != 0:
        raise InputError(f"{rev}: not a commit in this repository (a shallow clone needs `git fetch origin {rev}`)")
    return result.stdout.strip()


def _blob(rev: str, path: str, cwd: Path | None) -> str | None:
    """Git's object id of ``path`` at ``rev``; None when the commit has no such file."""
    result = run(["git", "rev-parse", "--verify", "--quiet", f"{rev}:{path}"], cwd, check=False)
    return result.stdout.strip() or None


def _diff(kind: str, base: str, cwd: Path | None, target: str) -> dict[str, dict]:
    """``dvc params|metrics diff --all --json``: {name: {"old", "new", "diff"}} for one file."""
    out = dvc(kind, "diff", "--all", "--json", base, "--targets", target, cwd=cwd)
    return (json.loads(out or "{}") or {}).get(target) or {}


_MISSING = object()


def _cell(entry: dict, side: str) -> str:
    """A value as params.yaml spells it (true, null, 0.5); "-" when that side does not have it."""
    value = entry.get(side, _MISSING)
    if value is _MISSING:
        return "-"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(round(value, 6)) if isinstance(value, float) else str(value)


def _change(entry: dict) -> str:
    old, new = entry.get("old"), entry.get("new")
    if (
        not isinstance(old, (int, float))
        or not isinstance(new, (int, float))
        or isinstance(old, bool)
        or isinstance(new, bool)
    ):
        return "-"
    change = new - old
    if change == 0:
        return "0"
    return f"{change:+d}" if isinstance(change, int) else f"{change:+.6f}".rstrip("0").rstrip(".")


def _key_order(path: str, cwd: Path | None) -> list[str]:
    """Dotted names in the workspace file's own order (params.yaml: the pipeline's), to list them that way."""
    file = (cwd or Path.cwd()) / path
    try:
        tree = yaml.safe_load(file.read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, yaml.YAMLError):
        return []
    return list(flatten_params(tree))


def params_section(diff: dict[str, dict], base: str, order: list[str]) -> list[str]:
    """Changed params in a table (workspace value in bold); all of them folded below."""
    names = [n for n in order if n in diff] + sorted(set(diff) - set(order))
    changed = [n for n in names if diff[n].get("old", _MISSING) != diff[n].get("new", _MISSING)]
    lines = []
    if changed:
        lines += [
            f"{len(changed)} of {len(names)} params differ from `{base}`:",
            "",
            f"| Param | `{base}` | workspace |",
            "| --- | --- | --- |",
        ]
        lines += [f"| **{n}** | {_cell(diff[n], 'old')} | **{_cell(diff[n], 'new')}** |" for n in changed]
    else:
        lines += [f"No param differs from `{base}`."]
    lines += [
        "",
        f"<details><summary>All {len(names)} params (Δ marks a change)</summary>",
        "",
        f"| Param | `{base}` | workspace | Δ |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {n} | {_cell(diff[n], 'old')} | {_cell(diff[n], 'new')} | {'Δ' if n in changed else ''} |" for n in names
    ]
    return lines + ["", "</details>"]


def metrics_section(diff: dict[str, dict], base: str, order: list[str]) -> list[str]:
    if not diff:
        return [f"_no {METRICS} in either revision_"]
    names = [n for n in order if n in diff] + sorted(set(diff) - set(order))
    lines = [
        f"Change = workspace - `{base}`.",
        "",
        f"| Metric | `{base}` | workspace | Change |",
        "| --- | --- | --- | --- |",
    ]
    return lines + [f"| {n} | {_cell(diff[n], 'old')} | {_cell(diff[n], 'new')} | {_change(diff[n])} |" for n in names]


def classes_section(diff: dict[str, dict], base: str) -> list[str]:
    """Per-class F1 with its change, and the workspace's precision, recall and support, by class name."""
    codes = sorted({int(key.split(".")[0]) for key in diff if key.split(".")[0].isdigit()})
    if not codes:
        return [f"_no {CLASS_METRICS} in either revision_"]
    lines = [
        f"| Class | F1 `{base}` | F1 workspace | Change | precision | recall | support |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for code in codes:
        f1 = diff.get(f"{code}.f1", {})
        name = category_label(code) if code in CLASSES else str(code)
        workspace = [_cell(diff.get(f"{code}.{key}", {}), "new") for key in ("precision", "recall", "support")]
        lines.append(
            f"| {name} | {_cell(f1, 'old')} | {_cell(f1, 'new')} | {_change(f1)} | " + " | ".join(workspace) + " |"
        )
    return lines


def _base_plot(base: str, sha: str, image_url: str | None, cwd: Path | None) -> str:
    """The base's committed confusion matrix as an image: its URL, or a local copy of the committed file."""
    if _blob(sha, CONFUSION_PLOT, cwd) is None:
        return f"_no {CONFUSION_PLOT} in `{base}`_"
    if image_url:
        return f"![confusion matrix of {base}]({image_url.format(rev=sha, path=CONFUSION_PLOT)})"
    copy = BASE_PLOTS / sha[:12] / Path(CONFUSION_PLOT).name
    target = (cwd or Path.cwd()) / copy
    if not target.is_file():
        png = run(["git", "show", f"{sha}:{CONFUSION_PLOT}"], cwd, text=False)
        with atomic_path(target) as tmp:
            tmp.write_bytes(png.stdout)
    return f"![confusion matrix of {base}]({copy.as_posix()})"


def _workspace_plot(head: str, image_url: str | None, cwd: Path | None) -> str:
    if not ((cwd or Path.cwd()) / CONFUSION_PLOT).is_file():
        return "_not built: run `dvc repro`_"
    if not image_url:
        return f"![confusion matrix of the workspace]({CONFUSION_PLOT})"
    # A comment can only show a file that is on the server: the committed one, if it is the same.
    if _blob(head, CONFUSION_PLOT, cwd) == git("hash-object", CONFUSION_PLOT, cwd=cwd):
        return f"![confusion matrix of the workspace]({image_url.format(rev=head, path=CONFUSION_PLOT)})"
    return f"_differs from the plot committed in `{head[:7]}`: commit `dvc repro`'s outputs to show it here_"


def charts_section(base: str, sha: str, image_url: str | None, cwd: Path | None) -> list[str]:
    """The charts of ``dvc plots diff BASE``, one column per revision, drawn offline (``make plots``)."""
    command = f"make plots REV={sha[:7]}"
    if image_url:  # a comment can only show committed files: say how to see them
        return [f"_`{command}` draws them (`dvc plots diff {sha[:7]}` as PNG files, no CDN needed)._"]
    try:
        charts = plot_images([sha], BASE_PLOTS / sha[:12] / "charts", cwd, images=False)
    except InputError as error:
        return [f"_not drawn: {error}_"]
    root = cwd or Path.cwd()
    return [f"![{chart.stem} of `{base}` and the workspace]({chart.relative_to(root).as_posix()})" for chart in charts]


def pr_report(base: str, image_url: str | None = None, note: str | None = None, cwd: Path | None = None) -> str:
    """Markdown comparing the workspace with ``base``.

    ``image_url`` (with ``{rev}`` and ``{path}``) shows the committed plots from
    a server, for a pull-request comment; without it the base's plot is copied
    out of git into ``.pr-report/`` and both are linked as local files.
    """
    sha = _resolve(base, cwd)
    head = git("rev-parse", "HEAD", cwd=cwd)
    lines = [
        MARKER,
        f"## Pipeline report: workspace against `{base}` (`{sha[:7]}`)",
        "",
        f"`workspace` is the checkout of `{head[:7]}` with its uncommitted changes.",
        *([note] if note else []),
        "",
        "### Params",
        "",
        *params_section(_diff("params", base, cwd, PARAMS), base, _key_order(PARAMS, cwd)),
        "",
        "### Metrics",
        "",
        *metrics_section(_diff("metrics", base, cwd, METRICS), base, _key_order(METRICS, cwd)),
        "",
        "<details><summary>Per-class metrics</summary>",
        "",
        *classes_section(_diff("metrics", base, cwd, CLASS_METRICS), base),
        "",
        "</details>",
        "",
        "### Confusion matrix",
        "",
        f"| `{base}` (`{sha[:7]}`) | workspace |",
        "| --- | --- |",
        f"| {_base_plot(base, sha, image_url, cwd)} | {_workspace_plot(head, image_url, cwd)} |",
        "",
        "### Test predictions (`dvc plots diff`)",
        "",
        *charts_section(base, sha, image_url, cwd),
    ]
    return "\n".join(lines) + "\n"
