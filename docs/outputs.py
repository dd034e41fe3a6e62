"""Command output pasted into the docs, refreshed by running the command: `make docs-outputs`.

It also copies the pipeline's plots that pages show (COPIES) into docs/img/, the chart DVC
draws from the test predictions as `make plots` renders it (RENDERED), and the example drift
report of docs/monitoring.md (DRIFT_IMAGE). The chart's pixels depend on the fonts of the machine
that draws it, so it is not compared either: it records the md5 of the Vega-Lite spec it shows,
data included, as `dvc plots show --json` fills it (CHART_MD5_KEY), and it is stale when that changed.

A block in README.md or a page of docs/ is marked with the command that produces it:

    <!-- output: dvc metrics show metrics/metrics.json -->
    ```
    (what the command prints, rewritten by this script)
    ```
    <!-- /output -->

``<!-- output-md: CMD -->`` pastes the output as Markdown (a table), without a code fence. The
commands run in the project folder with the project's .venv first on PATH; they read committed
files only, so the blocks are the same on every machine.

``<!-- output-slow: CMD -->`` blocks cost a pipeline run: CMD runs in a fresh clone of the
committed HEAD, in a temp folder, whose .venv is a symlink to this Python's environment (so
``make -o .venv/.installed run`` installs nothing into it) and whose own src/ comes first on
PYTHONPATH (so the clone runs its committed code, not this checkout's). Every slow block runs in the
same clone, in page order; then docs/drift_example.py makes the example drift report there, from
the model that clone built, and Chromium draws it into DRIFT_IMAGE. The picture itself differs
between Chromium versions and fonts, so it is not compared: it records the md5 of the report's
HTML it shows (a PNG text field, DRIFT_MD5_KEY), and it is stale when that HTML changed. Chromium
is needed only to redraw it.

Clock times and durations differ from run to run, so blocks are compared with them masked (MASKS):
``12:34:56`` and durations such as ``in 12.3s`` or ``; 23.9s``. A block that differs from its
command's output only there is left as it is: the page keeps the real values of the run that wrote
it, and a rerun does not rewrite it.

``--check`` rewrites nothing and exits 1 naming each block or image that differs from what its
command makes now (tests/test_docs_facts.py). It checks the fast blocks and images, unless
``--slow`` (only the slow blocks and the drift report, a minute or more) or ``--all``; without
``--check`` everything is refreshed, unless ``--fast`` or ``--slow`` says which.
``--without-model`` leaves out the blocks that need ``models/`` (those running ``rakuten predict``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- (output|output-md|output-slow): (.+?) -->\n(.*?)<!-- /output -->", re.DOTALL)
FENCE = re.compile(r"(```[\w-]*\n)(.*?)```\n", re.DOTALL)
SLOW = "output-slow"
# What differs from run to run: clock times (log lines) and durations ("in 12.3s", "; 23.9s").
MASKS = [
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "hh:mm:ss"),
    (re.compile(r"(\bin |; )\d+(?:\.\d+)?s\b"), r"\1N.Ns"),
]
# Set by the make that runs this script: a make in a slow block would print "Entering directory <temp path>".
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PYTHON")
FAST_TIMEOUT, SLOW_TIMEOUT = 300, 3600


def pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def masked(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def run(command: str, cwd: Path, timeout: float = FAST_TIMEOUT, extra_env: dict[str, str] | None = None) -> str:
    env = {
        **{name: value for name, value in os.environ.items() if name not in MAKE_VARIABLES},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "COLUMNS": "200",
        "NO_COLOR": "1",
        **(extra_env or {}),
    }
    result = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise SystemExit(f"`{command}` failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout.rstrip() + "\n"


NEEDS_MODEL = "rakuten predict"
# Pipeline plots shown by the pages, copied into docs/ so that they show on the forge too.
COPIES = {"docs/img/confusion_matrix.png": "plots/confusion_matrix.png"}
# The chart of a data plot, from `rakuten plots --out DIR`: (the plot, its file in DIR).
RENDERED = {"docs/img/predictions_chart.png": ("plots/predictions.csv", "predictions.png")}
CHART_MD5_KEY = "vega-lite-spec-md5"
DRIFT_IMAGE = "docs/img/drift_report.png"
DRIFT_MD5_KEY = "drift-report-html-md5"
DRIFT_HTML = "reports/drift.html"  # where docs/drift_example.py writes it, in the clone


def chart_md5s(root: Path) -> dict[str, str]:
    """For each chart of RENDERED, the md5 of its Vega-Lite spec with its data (`dvc plots show --json`)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = json.loads(run(f"dvc plots show --json -o {scratch}", root))["data"]
    md5s = {}
    for copy, (plot, _) in RENDERED.items():
        spec = next(entry["content"] for entry in report[plot] if entry["type"] == "vega")
        md5s[copy] = hashlib.md5(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()
    return md5s


def rendered(root: Path, md5s: dict[str, str]) -> dict[str, bytes]:
    """The charts of `dvc plots show` as `make plots` draws them (offline), each with its spec's md5."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    charts = {}
    with tempfile.TemporaryDirectory() as scratch:
        run(f"rakuten plots --out {scratch}", root)
        for copy, (_, name) in RENDERED.items():
            info = PngInfo()
            info.add_text(CHART_MD5_KEY, md5s[copy])
            buffer = io.BytesIO()
            with Image.open(Path(scratch) / name) as image:
                image.save(buffer, format="PNG", pnginfo=info, optimize=True)
            charts[copy] = buffer.getvalue()
    return charts


class Clone:
    """A fresh clone of the committed HEAD sharing this Python's environment, for the slow blocks."""

    def __init__(self, folder: Path):
        self.folder = folder

    def run(self, command: str) -> str:
        return run(command, self.folder, SLOW_TIMEOUT, {"PYTHONPATH": str(self.folder / "src")})


@contextlib.contextmanager
def fresh_clone(root: Path) -> Iterator[Clone]:
    if sys.prefix == sys.base_prefix:
        raise SystemExit("the slow blocks need the project's .venv: run `make docs-outputs`")
    with tempfile.TemporaryDirectory(prefix="rakuten-docs-") as scratch:
        folder = Path(scratch) / "mlops_rakuten"
        subprocess.run(["git", "clone", "--quiet", str(root), str(folder)], check=True, capture_output=True)
        (folder / ".venv").symlink_to(sys.prefix, target_is_directory=True)
        with open(folder / ".git" / "info" / "exclude", "a", encoding="utf-8") as exclude:
            exclude.write("/.venv\n")  # .gitignore's /.venv/ matches a folder, not this symlink
        yield Clone(folder)


def refreshed(text: str, root: Path, kinds: set[str], without_model: bool = False, clone: Clone | None = None) -> str:
    def replace(match: re.Match) -> str:
        kind, command, body = match.groups()
        if kind not in kinds or (without_model and NEEDS_MODEL in command):
            return match.group(0)
        output = clone.run(command) if kind == SLOW and clone else run(command, root)
        if kind == "output-md":
            new = output
        else:
            fence = FENCE.match(body)
            opening = fence.group(1) if fence else "```\n"
            new = f"{opening}{output}```\n"
        if masked(new) == masked(body):
            return match.group(0)
        return f"<!-- {kind}: {command} -->\n{new}<!-- /output -->"

    return BLOCK.sub(replace, text)


def png_text(path: Path) -> dict[str, str]:
    from PIL import Image

    if not path.is_file():
        return {}
    with Image.open(path) as image:
        return dict(getattr(image, "text", {}))


def screenshot(html: Path, html_md5: str) -> bytes:
    """The report as Chromium shows it 1,280 px wide, cut below its content, with the HTML's md5."""
    import io

    from PIL import Image, ImageChops
    from PIL.PngImagePlugin import PngInfo

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit(f"{DRIFT_IMAGE} is redrawn by Chromium: apt-get install chromium (tests/system_packages.txt)")
    with tempfile.TemporaryDirectory() as scratch:
        shot = Path(scratch) / "shot.png"
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--force-device-scale-factor=1",
                f"--user-data-dir={Path(scratch) / 'profile'}",
                "--window-size=1280,4000",
                f"--screenshot={shot}",
                html.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        with Image.open(shot) as image:
            page = image.convert("RGB")
    content = ImageChops.difference(page, Image.new("RGB", page.size, "white")).getbbox()
    bottom = min(page.height, (content[3] if content else page.height) + 24)
    info = PngInfo()
    info.add_text(DRIFT_MD5_KEY, html_md5)
    buffer = io.BytesIO()
    page.crop((0, 0, page.width, bottom)).save(buffer, format="PNG", pnginfo=info, optimize=True)
    return buffer.getvalue()


def drift_image(clone: Clone, root: Path, check: bool) -> bool:
    """Make the example drift report in the clone; True if DRIFT_IMAGE shows another one (redrawn unless check)."""
    if not (clone.folder / "models" / "model.joblib").is_file():
        clone.run("make -o .venv/.installed run")
    clone.run(f"python {root / 'docs' / 'drift_example.py'}")
    html = clone.folder / DRIFT_HTML
    html_md5 = hashlib.md5(html.read_bytes()).hexdigest()
    target = root / DRIFT_IMAGE
    if png_text(target).get(DRIFT_MD5_KEY) == html_md5:
        return False
    if not check:
        write(target, screenshot(html, html_md5))
    return True


def write(target: Path, data: bytes) -> None:
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    tier = parser.add_mutually_exclusive_group()
    tier.add_argument("--fast", action="store_true", help="only the fast blocks and images (--check's default)")
    tier.add_argument("--slow", action="store_true", help="only the blocks and images made in a fresh clone")
    tier.add_argument("--all", action="store_true", help="both (the default without --check)")
    parser.add_argument("--without-model", action="store_true", help=f"skip the blocks running {NEEDS_MODEL}")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project folder (default: this checkout)")
    args = parser.parse_args(argv)
    fast = not args.slow
    slow = args.slow or args.all or not (args.check or args.fast)
    stale = []
    if fast:
        for copy, source in COPIES.items():
            data, target = (args.root / source).read_bytes(), args.root / copy
            if not target.is_file() or target.read_bytes() != data:
                stale.append(copy)
                if not args.check:
                    write(target, data)
        md5s = chart_md5s(args.root)
        charts = [copy for copy, md5 in md5s.items() if png_text(args.root / copy).get(CHART_MD5_KEY) != md5]
        stale += charts
        if charts and not args.check:
            for copy, data in rendered(args.root, md5s).items():
                write(args.root / copy, data)
    kinds = ({"output", "output-md"} if fast else set()) | ({SLOW} if slow else set())
    with contextlib.ExitStack() as stack:
        clone = stack.enter_context(fresh_clone(args.root)) if slow else None
        for page in pages(args.root):
            text = page.read_text(encoding="utf-8")
            if not BLOCK.search(text):
                continue
            new = refreshed(text, args.root, kinds, args.without_model, clone)
            if new != text:
                stale.append(page.relative_to(args.root).as_posix())
                if not args.check:
                    write(page, new.encode("utf-8"))
        if clone and drift_image(clone, args.root, args.check):
            stale.append(DRIFT_IMAGE)
    if stale:
        print(("stale (run `make docs-outputs`): " if args.check else "refreshed: ") + ", ".join(stale))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
