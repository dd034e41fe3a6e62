"""Accuracy on live traffic, from logged predictions whose products came back labelled (docs/monitoring.md).

Products exported from the log (`rakuten predictions export`) come back labelled as a batch of data/raw
(`rakuten ingest`, POST /ingest). Each is joined to its logged predictions, and every model version that
answered gets its accuracy with a 95 % Wilson interval, beside its holdout accuracy (metrics/metrics.json
of the dvc.lock that built it, with a Wilson interval on its n_test products).

Join key: the text the model read (title and description, cleaned, joined). The log and the export have no
product id, so the text is the only key both sides have, and the right one: the same text is the same input,
so the same answer. The log holds the text cleaned (joined as it stands: nothing to compute per logged row);
a labelled row is keyed as it stands (an export sent back) and cleaned (a product labelled from its original
HTML). An edited text is another product and does not join.

What counts: every batch but rejected ones. Quarantined batches count, apart: the label screen quarantines
labels that disagree with production, which true labels of traffic the model gets wrong do. A product's
latest label counts, only against predictions logged before it arrived (a later model may have trained on
it), once per model (the same text gets the same answer: counting it again would narrow the interval with
no new evidence). Versions no dvc.lock records are counted, not labelled; at most MAX_VERSIONS are.

The alert's test (deployments/prometheus/accuracy-alerts.yml): the two 95 % intervals apart, live below
(``upper < holdout_lower``): one-sided, well under 2.5 % when the accuracies are equal. The served model is
refitted on train + test, so its holdout figure errs low and the test errs quiet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from mlops_rakuten.core.batches import BATCHES_FILE, QUARANTINED, REJECTED, batch_of, read_batches
from mlops_rakuten.core.challenge import X_COLUMNS, Y_COLUMNS, read_challenge_csv
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.paths import DVC_LOCK, METRICS, RAW_DIR, X_FILE, Y_FILE
from mlops_rakuten.monitoring.log_files import read_window
from mlops_rakuten.monitoring.prediction_log import FILE_GLOB
from mlops_rakuten.monitoring.reference import Built, find_build
from mlops_rakuten.ops.commands import run
from mlops_rakuten.ops.dvcfiles import file_md5
from mlops_rakuten.text import product_text

Z = 1.959964  # 95 % two-sided
MAX_VERSIONS = 5
LOOKBACK_DAYS = 30  # the prediction log's default retention: older predictions are gone anyway
log = logging.getLogger("monitor.live_accuracy")


def join_key(designation: Any, description: Any) -> str:
    """The product's text as the model read it (NUL dropped: the upload check drops it)."""
    return product_text(designation, description).replace("\x00", "")


def logged_key(row: dict[str, Any]) -> str:
    """join_key of a logged row, whose title and description the log holds already cleaned."""
    return f"{row['designation']} {row.get('description', '')}".strip().replace("\x00", "")


def wilson(correct: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval of a proportion; (nan, nan) without a trial."""
    if n <= 0:
        return math.nan, math.nan
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Label:
    code: int
    arrived: datetime  # when its batch was ingested
    quarantined: bool  # its batch awaits review


def labelled_products(raw_dir: Path) -> tuple[dict[str, Label], int]:
    """Join key -> label, for the rows of every batch not rejected (the latest batch wins); and how many
    distinct products they are."""
    batches = [b for b in read_batches(raw_dir) if b.status != REJECTED]
    if not batches:
        return {}, 0
    x = read_challenge_csv(raw_dir / X_FILE, X_COLUMNS)
    y = read_challenge_csv(raw_dir / Y_FILE, Y_COLUMNS)
    owner = batch_of(x.index, batches)
    arrived = {b.id: _utc(b.time) for b in batches}
    quarantined = {b.id for b in batches if b.status == QUARANTINED}
    labels: dict[str, Label] = {}
    products = set()
    for batch_id, designation, description, code in zip(
        owner, x["designation"], x["description"], y["prdtypecode"].reindex(x.index), strict=True
    ):
        if batch_id >= 0 and isinstance(code, str) and code.strip():
            batch = int(batch_id)
            label = Label(int(code), arrived[batch], batch in quarantined)
            labels[key := join_key(designation, description)] = label
            products.add(key)
            labels[f"{designation} {description}".strip().replace("\x00", "")] = label  # as exported
    return labels, len(products)


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass
class VersionAccuracy:
    model_version: str
    built_at: str  # "workspace" or the commit of the dvc.lock that built it
    labelled: int
    correct: int
    holdout: float  # NaN when its metrics cannot be read
    n_test: int
    quarantined: int = 0  # of the labelled, products whose batch is quarantined (awaits review)

    @property
    def accuracy(self) -> float:
        return self.correct / self.labelled if self.labelled else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.labelled)

    @property
    def holdout_interval(self) -> tuple[float, float]:
        if math.isnan(self.holdout) or self.n_test <= 0:
            return math.nan, math.nan
        return wilson(round(self.holdout * self.n_test), self.n_test)

    @property
    def below_holdout(self) -> bool:
        """The test of the alert rule: the live interval entirely under the holdout's."""
        return self.interval[1] < self.holdout_interval[0]  # False when either is NaN


@dataclass
class LiveAccuracy:
    versions: list[VersionAccuracy] = field(default_factory=list)  # newest answering model first
    labelled_products: int = 0  # labelled products of batches not rejected
    unknown_model: int = 0  # labelled predictions by models no dvc.lock records
    older_models: int = 0  # labelled predictions by models beyond MAX_VERSIONS
    no_text: int = 0  # logged predictions without text (features mode): cannot be joined


def holdout_accuracy(project: Path, built: Built) -> tuple[float, int]:
    """(accuracy, n_test) from the metrics/metrics.json that dvc.lock recorded with the model; (nan, 0)
    when that file is not the one it recorded (a stale workspace) or cannot be read."""
    if built.commit is None:
        path = project / METRICS
        text = path.read_text(encoding="utf-8") if path.is_file() and file_md5(path) == built.outs.get(METRICS) else ""
    else:
        shown = run(["git", "show", f"{built.commit}:{METRICS}"], project, check=False)
        recorded = shown.returncode == 0 and hashlib.md5(shown.stdout.encode()).hexdigest() == built.outs.get(METRICS)
        text = shown.stdout if recorded else ""
    try:
        metrics = json.loads(text)
        return float(metrics["accuracy"]), int(metrics["n_test"])
    except (ValueError, KeyError, TypeError):
        return math.nan, 0


class Builds:
    """find_build with memory: a model's build never changes, and searching the history costs git calls.
    A version no dvc.lock records is looked up again next time (it may have been committed since)."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[Built, float, int]] = {}

    def get(self, project: Path, version: str) -> tuple[Built, float, int] | None:
        if version not in self._known:
            try:
                built = find_build(project, version)
            except InputError:
                return None
            self._known[version] = (built, *holdout_accuracy(project, built))
        return self._known[version]


def measure(project: Path, log_dir: Path, builds: Builds | None = None, now: datetime | None = None) -> LiveAccuracy:
    """Live accuracy per model version from the project's labelled batches and the prediction log."""
    builds = builds or Builds()
    labels, products = labelled_products(project / RAW_DIR)
    result = LiveAccuracy(labelled_products=products)
    since = (now or datetime.now(timezone.utc)) - timedelta(days=LOOKBACK_DAYS)
    answers: dict[str, dict[str, int]] = {}  # model version -> join key -> predicted code (latest first seen)
    latest: dict[str, str] = {}  # model version -> time of its latest labelled prediction
    for row in read_window(log_dir, since).rows:
        if "designation" not in row:
            result.no_text += 1
            continue
        key = logged_key(row)
        label = labels.get(key)
        if label is None or _utc(row["time"]) >= label.arrived:
            continue
        version = row["model_version"]
        answers.setdefault(version, {})[key] = row["prdtypecode"]
        latest[version] = row["time"]
    for version in sorted(answers, key=latest.__getitem__, reverse=True):
        found = builds.get(project, version)
        if found is None:
            result.unknown_model += len(answers[version])
        elif len(result.versions) >= MAX_VERSIONS:
            result.older_models += len(answers[version])
        else:
            built, holdout, n_test = found
            mine = answers[version]
            correct = sum(1 for key, code in mine.items() if labels[key].code == code)
            quarantined = sum(1 for key in mine if labels[key].quarantined)
            where = built.commit or "workspace"
            result.versions.append(VersionAccuracy(version, where, len(mine), correct, holdout, n_test, quarantined))
    return result


class LiveAccuracyGauges:
    """The gauges of live accuracy, in the monitor's registry; ``update`` measures and sets them."""

    def __init__(self, registry: CollectorRegistry):
        def gauge(name: str, text: str, labels: tuple[str, ...] = ("model_version",)) -> Gauge:
            return Gauge(f"rakuten_live_accuracy{name}", text, labels, registry=registry)

        self.accuracy = gauge("", "Accuracy of the model on logged products that came back labelled")
        self.lower = gauge("_lower", "Lower bound of the 95 % Wilson interval of rakuten_live_accuracy")
        self.upper = gauge("_upper", "Upper bound of the 95 % Wilson interval of rakuten_live_accuracy")
        self.labelled = gauge("_labelled_products", "Logged products of this model that came back labelled")
        self.quarantined = gauge("_quarantined_products", "Of those, products whose batch is quarantined")
        self.holdout = gauge("_holdout", "The model's accuracy on its test split (metrics/metrics.json)")
        self.holdout_lower = gauge("_holdout_lower", "Lower bound of the 95 % Wilson interval of the holdout accuracy")
        self.holdout_upper = gauge("_holdout_upper", "Upper bound of the 95 % Wilson interval of the holdout accuracy")
        self.left_out = gauge("_left_out_products", "Labelled predictions not scored, by reason", ("reason",))
        self.last_success = gauge("_last_success_timestamp_seconds", "When live accuracy was last measured", ())
        self.live = (self.accuracy, self.lower, self.upper, self.labelled, self.quarantined)
        self.builds = Builds()
        self.result: LiveAccuracy | None = None
        self.inputs: tuple = ()
        self.measures = 0  # measures done (the others reused the last one)
        self.shown: set[str] = set()

    def update(self, project: Path, log_dir: Path) -> LiveAccuracy:
        """Measure again when a batch, dvc.lock or the set of log files changed, then set the gauges. New rows
        in the same log files need no new measure: they were answered after every label arrived."""
        inputs = _fingerprint(project, log_dir)
        if self.result is None or inputs != self.inputs:
            self.result, self.inputs = measure(project, log_dir, self.builds), inputs
            self.measures += 1
        gauges = (*self.live, self.holdout, self.holdout_lower, self.holdout_upper)
        for version in self.result.versions:
            values = (version.accuracy, *version.interval, version.labelled, version.quarantined)
            for each, value in zip(gauges, (*values, version.holdout, *version.holdout_interval), strict=True):
                each.labels(version.model_version).set(value)
        shown = {version.model_version for version in self.result.versions}
        for gone in self.shown - shown:  # removed, not cleared first: a scrape never sees the series vanish
            for each in gauges:
                each.remove(gone)
        self.shown = shown
        for reason in ("unknown_model", "older_models", "no_text"):
            self.left_out.labels(reason).set(getattr(self.result, reason))
        self.last_success.set(time.time())
        return self.result


def _fingerprint(project: Path, log_dir: Path) -> tuple:
    def stat(path: Path) -> tuple[int, int] | None:
        try:
            found = path.stat()
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size

    raw = project / RAW_DIR
    files = (raw / BATCHES_FILE, raw / X_FILE, raw / Y_FILE, project / DVC_LOCK, project / METRICS)
    return tuple(stat(path) for path in files), tuple(sorted(p.name for p in log_dir.glob(FILE_GLOB)))


def summary(result: LiveAccuracy) -> str:
    """What the monitor logs after each measure: one line per model version."""
    lines = [f"live accuracy: {result.labelled_products} labelled product(s) in batches not rejected"]
    for v in result.versions:
        low, high = v.interval
        hold_low, hold_high = v.holdout_interval
        verdict = "SIGNIFICANTLY BELOW holdout" if v.below_holdout else "not below holdout"
        lines.append(
            f"  model {v.model_version[:12]} ({v.built_at[:12]}): {v.correct}/{v.labelled} = {v.accuracy:.3f} "
            f"[{low:.3f}, {high:.3f}]; holdout {v.holdout:.3f} [{hold_low:.3f}, {hold_high:.3f}] "
            f"on {v.n_test}: {verdict}" + (f"; {v.quarantined} from quarantined batches" if v.quarantined else "")
        )
    for reason in ("unknown_model", "older_models", "no_text"):
        if getattr(result, reason):
            lines.append(f"  {getattr(result, reason)} prediction(s) left out: {reason.replace('_', ' ')}")
    return "\n".join(lines)


def live_accuracy_forever(registry: CollectorRegistry, project: Path, log_dir: Path, interval: float) -> None:
    """The monitor's loop (a thread of its own, beside drift): measure, set the gauges, sleep."""
    gauges = LiveAccuracyGauges(registry)
    while True:
        try:
            log.info("%s", summary(gauges.update(project, log_dir)))
        except InputError as exc:  # no log folder yet, a damaged batch record...
            log.warning("live accuracy not measured: %s", exc)
        except Exception:
            log.exception("live accuracy run crashed")
        time.sleep(interval)
