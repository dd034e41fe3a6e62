"""The documentation site: built with `mkdocs build --strict` (what `make docs-build` runs), its
generated reference pages hold what the code says, a broken link fails the build, and the built
site opens in headless Chromium (1,280 px wide) with no console error, every image loaded and no code
block or table cut off."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser import Chromium, serve_directory
from conftest import needs

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
BUILD_ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
PAGES = [
    "index.html",
    "getting-started/index.html",
    "pipeline/index.html",
    "experiments/index.html",
    "exploration/index.html",
    "pull-requests/index.html",
    "sharing/index.html",
    "prediction/index.html",
    "serving/index.html",
    "quality/index.html",
    "troubleshooting/index.html",
    "team/index.html",
    "serving-limits/index.html",
    "containers/index.html",
    "monitoring/index.html",
    "speed/index.html",
    "reference/cli/index.html",
    "reference/api/index.html",
    "reference/python/index.html",
]


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=config.parent,
        env=BUILD_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built strictly from this checkout, into a temp folder."""
    before = git_status()
    site = tmp_path_factory.mktemp("site")
    built = mkdocs_build(ROOT / "mkdocs.yml", site)
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stdout}\n{built.stderr}"
    assert git_status() == before, "building the docs changed files in the repository"
    return site


def test_every_page_is_built(site):
    missing = [page for page in PAGES if not (site / page).is_file()]
    assert not missing, f"pages missing from the built site: {missing}"


def test_pipeline_plots_are_published_as_committed(site):
    published = site / "img" / "confusion_matrix.png"
    assert published.read_bytes() == (ROOT / "plots" / "confusion_matrix.png").read_bytes()
    assert (site / "img" / "learning_curve.png").stat().st_size > 10_000


def test_exploration_page_is_the_notebook_run_with_its_outputs(site):
    import nbformat

    html = (site / "exploration/index.html").read_text()
    notebook = nbformat.read(ROOT / "notebooks" / "01_exploration.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells), "the notebook is stored with outputs"
    headings = [
        line[3:]
        for cell in notebook.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("## ")
    ]
    missing = [h for h in headings if h.replace("&", "&amp;") not in html]
    assert len(headings) >= 5 and not missing, f"notebook sections missing from the page: {missing}"
    assert "products from" in html, "the first cell's printed output is missing"
    assert html.count('class="dataframe"') >= 3, "the notebook's tables are missing"
    figures = sorted((site / "img" / "exploration").glob("*.png"))
    assert len(figures) >= 2 and all(f.read_bytes().startswith(b"\x89PNG") for f in figures), figures
    for figure in figures:
        assert f"img/exploration/{figure.name}" in html, f"{figure.name} is not shown on the page"


def test_reference_pages_come_from_the_code(site):
    from mlops_rakuten.cli import build_parser

    cli = (site / "reference/cli/index.html").read_text()
    commands = [a for a in build_parser()._actions if a.dest == "command"][0].choices
    assert commands is not None  # the subcommands
    for name in commands:
        assert f"rakuten {name} --help" in cli, f"`rakuten {name}` missing from the CLI reference"
    assert "--chunk-size" in cli and "--top-k" in cli

    api = (site / "reference/api/index.html").read_text()
    for route in ("POST /token", "POST /predict", "GET /info", "POST /ingest", "POST /train", "GET /health"):
        assert route in api, f"{route} missing from the API reference"
    document = json.loads((site / "reference/openapi.json").read_text())
    assert "/predict" in document["paths"]
    for schema in document["components"]["schemas"]:
        assert f'id="{schema.lower()}"' in api, f"schema {schema} has no section in the API reference"

    python = (site / "reference/python/index.html").read_text()
    for module in ("mlops_rakuten.stages.ingest", "mlops_rakuten.core.params", "mlops_rakuten.core.predict"):
        assert f'id="{module}"' in python, f"{module} missing from the Python reference"


def test_a_broken_link_fails_the_strict_build(tmp_path):
    for name in ("docs", "src", "plots", "metrics", "notebooks"):
        shutil.copytree(ROOT / name, tmp_path / name)
    for name in ("mkdocs.yml", "params.yaml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    page = tmp_path / "docs" / "experiments.md"
    page.write_text(page.read_text() + "\nSee [the sweep guide](sweeps-guide.md).\n")

    built = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")

    assert built.returncode != 0
    assert "sweeps-guide.md" in built.stdout + built.stderr


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    executable = needs("chromium")
    with serve_directory(site) as base_url, Chromium(executable, tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium, base_url


@pytest.mark.parametrize(
    "page, images",
    [
        ("", {"confusion_matrix.png"}),
        ("experiments/", {"confusion_matrix.png", "learning_curve.png"}),
        ("exploration/", set()),
        ("serving/", set()),  # the widest commands and JSON of the site
        ("monitoring/", {"drift_report.png"}),  # the widest tables
    ],
)
def test_page_renders_in_chromium_without_errors(browser, page, images, tmp_path):
    chromium, base_url = browser
    shots = Path(os.environ.get("RAKUTEN_DOCS_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    screenshot = shots / f"{page.strip('/') or 'home'}.png"

    seen = chromium.open(base_url + page, screenshot)

    assert not seen.errors, f"{page or 'home page'}: console or network errors: {seen.errors}"
    assert seen.heading, f"{page or 'home page'}: no <h1> rendered"
    assert not seen.cut_code, f"{page or 'home page'}: code blocks wider than the page, cut off: {seen.cut_code}"
    assert not seen.cut_tables, f"{page or 'home page'}: tables wider than the page, cut off: {seen.cut_tables}"
    broken = [img["src"] for img in seen.images if not img["loaded"]]
    assert not broken, f"images that did not load: {broken}"
    loaded = {img["src"].rsplit("/", 1)[-1] for img in seen.images if img["loaded"]}
    assert images <= loaded, f"expected images {images}, loaded {loaded}"
    assert all(img["width"] >= 200 for img in seen.images), seen.images

    import matplotlib.image

    pixels = matplotlib.image.imread(screenshot)
    assert pixels.shape[0] >= 600 and pixels.shape[1] >= 1000
    assert pixels.std() > 0.05, "the screenshot is (nearly) blank"
