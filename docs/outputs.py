"""Command output pasted into the docs, refreshed by running the command: `make docs-outputs`.

It also copies the pipeline's plots that pages show (COPIES) into docs/img/, and the chart DVC
draws from the test predictions as `make plots` renders it (RENDERED).

A block in README.md or a page of docs/ is marked with the command that produces it:

    <!-- output: dvc metrics show metrics/metrics.json -->
    ```
    (what the command prints, rewritten by this script)
    ```
    <!-- /output -->

``<!-- output-md: CMD -->`` pastes the output as Markdown (a table), without a code fence. The
commands run in the project folder with the project's .venv first on PATH; they read committed
files only, so the blocks are the same on every machine. ``--check`` rewrites nothing and exits 1
naming each block that differs from what its command prints now (tests/test_docs_facts.py);
``--without-model`` leaves out the blocks that need ``models/`` (those running ``rakuten predict``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- (output|output-md): (.+?) -->\n(.*?)<!-- /output -->", re.DOTALL)
FENCE = re.compile(r"(```[\w-]*\n)(.*?)```\n", re.DOTALL)


def pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def run(command: str, root: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    result = subprocess.run(command, shell=True, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"`{command}` failed (exit {result.returncode}):\n{result.stderr}")
    return result.stdout.rstrip() + "\n"


NEEDS_MODEL = "rakuten predict"
# Pipeline plots shown by the pages, copied into docs/ so that they show on the forge too.
COPIES = {"docs/img/confusion_matrix.png": "plots/confusion_matrix.png"}
RENDERED = {"docs/img/predictions_chart.png": "predictions.png"}  # from `rakuten plots --out DIR`


def rendered(root: Path) -> dict[str, bytes]:
    """The charts of `dvc plots show` as `make plots` draws them (offline, byte-stable)."""
    with tempfile.TemporaryDirectory() as scratch:
        run(f"rakuten plots --out {scratch}", root)
        return {copy: (Path(scratch) / name).read_bytes() for copy, name in RENDERED.items()}


def refreshed(text: str, root: Path, without_model: bool = False) -> str:
    def replace(match: re.Match) -> str:
        kind, command, body = match.groups()
        if without_model and NEEDS_MODEL in command:
            return match.group(0)
        output = run(command, root)
        if kind == "output-md":
            return f"<!-- {kind}: {command} -->\n{output}<!-- /output -->"
        fence = FENCE.match(body)
        opening = fence.group(1) if fence else "```\n"
        return f"<!-- {kind}: {command} -->\n{opening}{output}```\n<!-- /output -->"

    return BLOCK.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    parser.add_argument("--without-model", action="store_true", help=f"skip the blocks running {NEEDS_MODEL}")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project folder (default: this checkout)")
    args = parser.parse_args(argv)
    stale = []
    images = {copy: (args.root / source).read_bytes() for copy, source in COPIES.items()} | rendered(args.root)
    for copy, data in images.items():
        target = args.root / copy
        if not target.is_file() or target.read_bytes() != data:
            stale.append(copy)
            if not args.check:
                tmp = target.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(target)
    for page in pages(args.root):
        text = page.read_text(encoding="utf-8")
        if not BLOCK.search(text):
            continue
        new = refreshed(text, args.root, args.without_model)
        if new != text:
            stale.append(page.relative_to(args.root).as_posix())
            if not args.check:
                tmp = page.with_suffix(".md.tmp")
                tmp.write_text(new, encoding="utf-8")
                tmp.replace(page)
    if stale:
        print(("stale (run `make docs-outputs`): " if args.check else "refreshed: ") + ", ".join(stale))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
