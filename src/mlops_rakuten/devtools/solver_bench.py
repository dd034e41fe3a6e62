"""The Newton solvers (per class and in one block) against liblinear on the same full-size features (make bench).

The features are the train split of the real challenge sample replicated to the full challenge size
(or of the demo set when the sample is absent), built with params.yaml. Each solver fits the 27
one-vs-rest problems of that matrix with params.yaml's C and class weights, in this process, with
one BLAS thread; CPU seconds are this process's. Weighted F1 on the test split shows they learn
the same model; the last lines compare the per-class solver's coarse start with its old start from
w = 0, and the block solver with the per-class one (CPU, test predictions).
Prints a Markdown table (docs/speed.md "Newton against liblinear").
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import f1_score
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from mlops_rakuten.core import newton_svm
from mlops_rakuten.core.demo_data import write_demo_data
from mlops_rakuten.core.features import build_vectorizer
from mlops_rakuten.core.one_vs_rest import fit_linear_svc
from mlops_rakuten.core.params import read_params
from mlops_rakuten.core.paths import PARAMS, X_FILE, Y_FILE
from mlops_rakuten.devtools.benchmark import FULL_SIZE, REAL_SAMPLE, ROOT, replicate_sample
from mlops_rakuten.devtools.crossval import load_products
from mlops_rakuten.stages.split import split


def full_size_features(sample: Path, rows: int) -> tuple[str, Any, np.ndarray, Any, np.ndarray]:
    """(what the data is, train matrix, train labels, test matrix, test labels)."""
    with tempfile.TemporaryDirectory() as folder:
        if (sample / X_FILE).is_file() and (sample / Y_FILE).is_file():
            replicate_sample(sample, Path(folder), rows)
            label = f"real-like ({sample.name} replicated to {rows:,} rows)"
        else:
            write_demo_data(Path(folder), rows, seed=42)
            label = f"demo data ({rows:,} rows; no real sample in {sample})"
        products = load_products(Path(folder), read_params(ROOT / PARAMS, "preprocess"))
    train, test = split(products, read_params(ROOT / PARAMS, "split"), Path(folder))
    vectorizer = build_vectorizer(read_params(ROOT / PARAMS, "featurize"))
    x_train = vectorizer.fit_transform(train)
    return label, x_train, train["prdtypecode"].to_numpy(), vectorizer.transform(test), test["prdtypecode"].to_numpy()


def timed(fit: Callable[[], Any]) -> tuple[Any, float, bool]:
    """The fitted model, the CPU seconds the fit took, and whether it warned that it did not converge."""
    with threadpool_limits(limits=1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.process_time()
        model = fit()
        seconds = time.process_time() - start
    return model, seconds, any(issubclass(w.category, ConvergenceWarning) for w in caught)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=Path, default=REAL_SAMPLE, help="real challenge rows to replicate")
    parser.add_argument("--rows", type=int, default=FULL_SIZE, help="rows before the split (default: the challenge's)")
    parser.add_argument(
        "--newton-only", action="store_true", help="only the per-class solver, from w = 0 and from its coarse start"
    )
    parser.add_argument("--repeat", type=int, default=1, help="fits per solver; the least CPU is kept (default 1)")
    args = parser.parse_args(argv)
    label, x, y, x_test, y_test = full_size_features(args.sample, args.rows)
    model = read_params(ROOT / PARAMS, "model")
    C, weight, tol = model["C"], model["class_weight"], model["tol"]
    candidates: list[tuple[str, Callable[[], Any]]] = [
        (
            f"Newton per class from w = 0 (before the coarse start), `tol` {tol}",
            lambda: _from_zero(lambda: fit_linear_svc(x, y, {**model, "solver": "newton"}, n_jobs=1)),
        ),
        (
            f"Newton per class, coarse start (this project), `tol` {tol}",
            lambda: fit_linear_svc(x, y, {**model, "solver": "newton"}, n_jobs=1),
        ),
        (
            f"Newton, all classes in one block (this project), `tol` {tol}",
            lambda: fit_linear_svc(x, y, {**model, "solver": "block"}, n_jobs=1),
        ),
        (
            f"`LinearSVC(dual=False)`, `tol` {tol}",
            lambda: LinearSVC(C=C, class_weight=weight, dual=False, tol=tol).fit(x, y),
        ),
        (
            "`LinearSVC(dual=False)`, default `tol` (1e-4)",
            lambda: LinearSVC(C=C, class_weight=weight, dual=False).fit(x, y),
        ),
        (
            "`LinearSVC(dual=True)`, default `tol` (1e-4)",
            lambda: LinearSVC(C=C, class_weight=weight, dual=True, random_state=model["seed"]).fit(x, y),
        ),
    ]
    if args.newton_only:
        candidates = candidates[:2]
    print(
        f"{label}: {x.shape[0]:,} train rows x {x.shape[1]:,} features, {x.nnz / 1e6:.1f} M non-zeros; "
        f"C = {C}, class_weight {weight}; one process, one BLAS thread\n"
    )
    print(f"| Solver | CPU s{f' (least of {args.repeat})' if args.repeat > 1 else ''} | weighted F1 (test split) |")
    print("|---|---:|---:|")
    predictions, cpu = [], []
    for name, fit in candidates:
        runs = [timed(fit) for _ in range(max(args.repeat, 1))]
        fitted, seconds, warned = min(runs, key=lambda run: run[1])
        predictions.append(fitted.predict(x_test))
        cpu.append(seconds)
        f1 = f1_score(y_test, predictions[-1], average="weighted")
        print(f"| {name} | {seconds:.1f}{' (did not converge)' if warned else ''} | {f1:.4f} |", flush=True)
    for first, second, what in ((0, 1, "coarse start against w = 0"), (1, 2, "block against per class"))[
        : len(candidates) - 1
    ]:
        same = int((predictions[first] == predictions[second]).sum())
        print(
            f"\n{what}: CPU {cpu[second]:.2f} s against {cpu[first]:.2f} s ({cpu[second] / cpu[first]:.2f} of the time, "
            f"{cpu[first] / cpu[second]:.2f}× less); "
            f"the same prediction for {same:,} of {len(y_test):,} test rows"
        )


def _from_zero(fit: Callable[[], Any]) -> Any:
    """``fit()`` with the per-class solver started from w = 0 at any size, as it was before its coarse start."""
    saved = newton_svm.COARSE_MIN_ROWS
    newton_svm.COARSE_MIN_ROWS = 2**62
    try:
        return fit()
    finally:
        newton_svm.COARSE_MIN_ROWS = saved


if __name__ == "__main__":
    main()
