"""Accuracy on live traffic, from logged predictions whose products came back labelled.

`rakuten predictions export` writes logged products as an /ingest CSV; once someone fills in their
prdtypecode they come back through `rakuten ingest` or POST /ingest as a batch of data/raw. Each such
product is joined to the predictions the log holds for it, and every model version that answered gets
its accuracy on them with a 95 % Wilson interval, beside the accuracy its holdout measured
(metrics/metrics.json of the dvc.lock that built it, with its own Wilson interval on n_test products).

The join key is the product's text as the model read it: product_text(designation, description), the
cleaned title and description joined, as serving builds the model's input. The log holds no product id
and the export writes none, so the text is the only key both sides have; and it is the right one, since
two products with the same key are the same input and got the same answer from the same model. The text
is cleaned again on both sides (the log holds it cleaned, data/raw holds it as uploaded), so an export
sent back unchanged joins exactly, and a product whose text someone edited is no longer the product the
model answered and is not joined.

What counts: rows of every batch but rejected ones (a person judged those labels wrong). Quarantined
batches count: the label screen quarantines a batch whose labels disagree with production, which is just
what labels of traffic the model gets wrong do (measured: a source the demo model does not know, labelled
truly, agrees 4 % and is quarantined); their products are counted apart, so the on-call engineer knows to
review them (`rakuten batches list`). The latest batch's label counts when a product was labelled twice, and only predictions logged before that
batch arrived (a later model may have been fitted on the label). A product answered several times by
one model counts once: the same text always gets the same answer, and counting it again would narrow
the interval with no new evidence. Model versions no dvc.lock records are counted, not labelled, and
the gauges carry at most MAX_VERSIONS versions (the latest to answer), so their label set stays bounded.

The test (deployments/prometheus/accuracy-alerts.yml): live accuracy is significantly below the holdout's
when the two 95 % Wilson intervals do not overlap, the live one below (``upper < holdout_lower``). Two
independent intervals that do not overlap reject equal accuracies one-sided at well under 2.5 %; the
served model is refitted on train + test, so the holdout figure errs low and the test errs quiet.
"""

from __future__ import annotations

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


def labelled_products(raw_dir: Path) -> dict[str, Label]:
    """Join key -> label, for the rows of every batch not rejected (the latest batch wins)."""
    batches = [b for b in read_batches(raw_dir) if b.status != REJECTED]
    if not batches:
        return {}
    x = read_challenge_csv(raw_dir / X_FILE, X_COLUMNS)
    y = read_challenge_csv(raw_dir / Y_FILE, Y_COLUMNS)
    owner = batch_of(x.index, batches)
    arrived = {b.id: _utc(b.time) for b in batches}
    quarantined = {b.id for b in batches if b.status == QUARANTINED}
    labels: dict[str, Label] = {}
    for batch_id, designation, description, code in zip(
        owner, x["designation"], x["description"], y["prdtypecode"].reindex(x.index), strict=True
    ):
        if batch_id >= 0 and isinstance(code, str) and code.strip():
            batch = int(batch_id)
            labels[join_key(designation, description)] = Label(int(code), arrived[batch], batch in quarantined)
    return labels


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
        text = shown.stdout if shown.returncode == 0 else ""
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
    labels = labelled_products(project / RAW_DIR)
    result = LiveAccuracy(labelled_products=len(labels))
    since = (now or datetime.now(timezone.utc)) - timedelta(days=LOOKBACK_DAYS)
    answers: dict[str, dict[str, int]] = {}  # model version -> join key -> predicted code (latest first seen)
    latest: dict[str, str] = {}  # model version -> time of its latest labelled prediction
    for row in read_window(log_dir, since).rows:
        if "designation" not in row:
            result.no_text += 1
            continue
        key = join_key(row["designation"], row.get("description", ""))
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
