"""Facts typed into README.md and docs/ hold: pasted output is what its command prints now, numbers
match the code they describe, and no page shows a path of the machine it was written on."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_rakuten.core.predict import TEMPERATURE
from mlops_rakuten.ops.raw_data import DEMO_ROWS, DEMO_SEED
from mlops_rakuten.serve import settings
from mlops_rakuten.serve.guard import NO_BODY_MAX_BYTES

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Home folders, this machine's work folders and captured temp folders; /tmp/rakuten-nginx and
# /tmp/new_products.csv are working files the pages tell the reader to create.
MACHINE_PATH = re.compile(
    r"(?<![\w.~-])(?:/(?:home|root|Users|work|mnt)/\S*|/tmp/(?!rakuten-nginx\b|new_products\.csv\b)\S+)"
)


def text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def test_no_page_shows_an_absolute_path_of_a_machine():
    found = [
        f"{page.relative_to(ROOT)}:{number}: {match.group(0)}"
        for page in PAGES
        for number, line in enumerate(text(page).splitlines(), 1)
        for match in MACHINE_PATH.finditer(line)
    ]
    assert not found, "machine paths in the docs:\n" + "\n".join(found)


def test_the_path_check_catches_what_it_is_for():
    assert MACHINE_PATH.search("added admin 'alice' in /work/wt/i11/secrets/users.json")
    assert MACHINE_PATH.search("(3 users in /tmp/i12-doc.1jOU/users.json)")
    assert not MACHINE_PATH.search("nginx -p /tmp/rakuten-nginx -c nginx.conf; ~/mlops_rakuten/secrets")


def outputs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "docs" / "outputs.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )


def test_pasted_outputs_are_what_the_commands_print_now():
    """`make docs-outputs` leaves nothing to change. The prediction blocks need the model that the
    committed dvc.lock records (`make run`); without it only the others are checked."""
    status = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "status", "--json", "train"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    with_model = (ROOT / "models" / "model.joblib").is_file() and status.stdout.strip() in ("", "{}")
    result = outputs("--check", *([] if with_model else ["--without-model"]))
    assert result.returncode == 0, result.stdout + result.stderr
    if not with_model:
        pytest.skip("models/model.joblib is not the model dvc.lock records (make run): prediction blocks unchecked")


def docs_outputs_module():
    spec = importlib.util.spec_from_file_location("docs_outputs", ROOT / "docs" / "outputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_block_that_differs_only_in_clock_times_and_durations_is_kept(tmp_path):
    module = docs_outputs_module()
    page = "<!-- output: echo '09:15:02 featurize: 20 rows in 1.5s; 3 files; 2.0s' -->\n```\n{}\n```\n<!-- /output -->"
    shown = page.format("14:07:39 featurize: 20 rows in 23.5s; 3 files; 16.3s")
    assert module.refreshed(shown, tmp_path, {"output"}) == shown
    other_count = page.format("14:07:39 featurize: 21 rows in 23.5s; 3 files; 16.3s")
    assert module.refreshed(other_count, tmp_path, {"output"}) == page.format(
        "09:15:02 featurize: 20 rows in 1.5s; 3 files; 2.0s"
    )


@pytest.mark.slow
def test_outputs_of_a_fresh_clone_are_what_it_prints_now():
    """The slow blocks (`make run` on a fresh clone of HEAD, clock and timings masked) and the example
    drift report made from the model that clone builds: a pipeline run, a minute or more."""
    result = outputs("--check", "--slow")
    assert result.returncode == 0, result.stdout + result.stderr


def test_score_temperature_in_the_docs_and_the_cli_help_is_the_code_s():
    shown = f"softmax(decision values / {TEMPERATURE:g})"
    assert shown in text(ROOT / "docs" / "prediction.md")
    help_text = subprocess.run(
        [str(Path(sys.executable).parent / "rakuten"), "predict", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert shown in " ".join(help_text.split())


def test_calibration_figures_in_the_docs_are_the_ones_recorded_next_to_the_temperature():
    recorded = text(ROOT / "src" / "mlops_rakuten" / "core" / "predict.py")
    page = text(ROOT / "docs" / "prediction.md")
    figures = re.search(r"5-fold CV: ([\d.]+) against ([\d.]+), expected calibration error ([\d.]+)", page)
    assert figures, "prediction.md no longer states the CV calibration figures"
    mean_score, accuracy, ece = figures.groups()
    assert f"mean top-1 score {mean_score} vs top-1 accuracy {accuracy} (ECE {ece})" in recorded


def test_serving_limits_table_matches_the_settings():
    page = text(ROOT / "docs" / "serving-limits.md")
    mib, kib = 2**20, 2**10
    assert (
        f"| `POST /predict` | {settings.PREDICT_MAX_BYTES // mib} MiB | one product, or a list of 1 to "
        f"{settings.MAX_PREDICT_PRODUCTS}; designation ≤ {settings.MAX_DESIGNATION_CHARS:,} characters, "
        f"description ≤ {settings.MAX_DESCRIPTION_CHARS:,} |"
    ) in page
    assert f"| `POST /ingest` | {settings.MAX_UPLOAD_BYTES // mib} MiB CSV" in page
    assert f"| `POST /token` | {settings.TOKEN_MAX_BYTES // kib} KiB |" in page
    assert f"| every other route | {NO_BODY_MAX_BYTES // kib} KiB |" in page
    defaults = settings.Settings.__dataclass_fields__
    assert f"`RAKUTEN_LOGIN_PER_MINUTE` times a minute (default {defaults['login_per_minute'].default})" in page
    assert (
        f"`RAKUTEN_LOGIN_FAILURES_PER_MINUTE` times a minute (default {defaults['login_failures_per_minute'].default}"
    ) in page


def test_seed_commands_said_to_be_the_same_are_make_targets():
    page = text(ROOT / "docs" / "containers.md")
    row = re.search(r"^\| `make docker-build`.*\| same", page, re.MULTILINE)
    assert row, "containers.md lost the row of seed commands kept as they were"
    targets = ["docker-build"] + re.findall(r", `([\w-]+)`", row.group(0))
    makefile = text(ROOT / "Makefile") + text(ROOT / "docker" / "containers.mk")  # the Makefile includes it
    missing = [t for t in targets if not re.search(rf"^{re.escape(t)}:", makefile, re.MULTILINE)]
    assert len(targets) >= 8 and not missing, missing


def committed_model_md5() -> str:
    lock = yaml.safe_load(text(ROOT / "dvc.lock"))
    return next(out["md5"] for out in lock["stages"]["train"]["outs"] if out["path"] == "models/model.joblib")


def test_serving_page_shows_the_committed_model_data_and_metrics():
    page = text(ROOT / "docs" / "serving.md")
    model, data = committed_model_md5(), yaml.safe_load(text(ROOT / "data" / "raw.dvc"))["outs"][0]
    assert f'"model_version": "{model}"' in page and f'"loaded_md5": "{model}"' in page
    assert f'"md5": "{data["md5"]}", "size": {data["size"]}' in page
    shown = re.search(r'"metrics": (\{[^}]*\})', page)
    assert shown, "serving.md shows no metrics"
    metrics = json.loads(shown.group(1))
    assert metrics == json.loads(text(ROOT / "metrics" / "metrics.json"))


def test_make_run_log_on_getting_started_has_the_committed_counts():
    page = text(ROOT / "docs" / "getting-started.md")
    metrics = json.loads(text(ROOT / "metrics" / "metrics.json"))
    keys = sum(len(section) for section in yaml.safe_load(text(ROOT / "params.yaml")).values())
    assert f"check_params: params.yaml: {keys} keys in 5 sections checked" in page
    assert f"({DEMO_ROWS} rows, seed {DEMO_SEED})" in page
    assert f"rows -> {metrics['n_train']} train, {metrics['n_test']} test" in page


def test_experiment_outputs_on_the_experiments_page_include_the_committed_metrics():
    page = text(ROOT / "docs" / "experiments.md")
    m = json.loads(text(ROOT / "metrics" / "metrics.json"))
    assert f"ingest.fraction=1.0 n_train={m['n_train']} f1_weighted={m['f1_weighted']}" in page
    workspace = re.search(r"^\| workspace +\| - +\| - +\| ([\d.]+) +\| ([\d.]+) +\| ([\d.]+) ", page, re.MULTILINE)
    assert workspace and [float(v) for v in workspace.groups()] == [
        round(m[k], 5) for k in ("accuracy", "f1_weighted", "f1_macro")
    ]
