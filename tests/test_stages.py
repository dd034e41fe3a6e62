"""Unit tests of each stage's pure functions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import sparse
from sklearn.metrics import confusion_matrix
from sklearn.pipeline import Pipeline

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.features import build_vectorizer, make_picklable_stable
from mlops_rakuten.core.one_vs_rest import fit_linear_svc
from mlops_rakuten.core.params import read_params
from mlops_rakuten.core.scores import class_metrics, headline_metrics
from mlops_rakuten.stages.evaluate import confusion_figure, prediction_table
from mlops_rakuten.stages.ingest import join_challenge, parse_labels, sample_fraction
from mlops_rakuten.stages.preprocess import preprocess
from mlops_rakuten.stages.split import split
from mlops_rakuten.stages.train import fit_holdout_and_shipped
from mlops_rakuten.text import clean_text, product_texts

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def products(codes: list[int], texts: list[str] | None = None) -> pd.DataFrame:
    texts = texts or [f"produit {i} {c}" for i, c in enumerate(codes)]
    return pd.DataFrame({"designation": texts, "description": [""] * len(codes), "prdtypecode": codes})


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("<p>Pull &eacute;l&eacute;gant</p>", "Pull élégant"),
        ("L&#39;&amp;eacute;t&eacute;", "L'été"),
        ("&lt;b&gt;Gras&lt;/b&gt;\n\n  texte", "Gras texte"),
        (float("nan"), ""),
        (None, ""),
        ("  déjà   propre ", "déjà propre"),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_product_texts_joins_title_first_and_cuts_the_head():
    frame = pd.DataFrame({"designation": ["Titre"], "description": ["<i>Une description</i>"]})
    out = product_texts(frame, head_chars=8)
    assert out.loc[0, "text"] == "Titre Une description"
    assert out.loc[0, "head"] == "Titre Un"
    # description is optional: a merchant feed may send the title only
    assert product_texts(frame[["designation"]], 100).loc[0, "text"] == "Titre"


def test_parse_labels_rejects_non_integer_and_unknown_codes():
    assert parse_labels(pd.Series(["10", "2583"]), Path("y.csv")).tolist() == [10, 2583]
    with pytest.raises(InputError, match=r"y.csv: prdtypecode at index 1 is 'abc'"):
        parse_labels(pd.Series(["10", "abc"]), Path("y.csv"))
    with pytest.raises(InputError, match="prdtypecode at index 0"):
        parse_labels(pd.Series([np.nan, "10"]), Path("y.csv"))
    with pytest.raises(InputError, match="12 is not one of the 27"):
        parse_labels(pd.Series(["12"]), Path("y.csv"))


def test_join_challenge_requires_the_same_index():
    x = pd.DataFrame({"designation": ["a", "b"], "description": ["", ""]}, index=[0, 1])
    y = pd.DataFrame({"prdtypecode": ["10", "40"]}, index=[0, 2])
    with pytest.raises(InputError, match="index 1 only in X"):
        join_challenge(x, y, Path("X.csv"), Path("Y.csv"))
    y.index = [0, 1]
    assert join_challenge(x, y, Path("X.csv"), Path("Y.csv"))["prdtypecode"].tolist() == [10, 40]


def test_sample_fraction_is_stratified_and_deterministic():
    frame = products([10] * 50 + [40] * 20 + [50] * 3)
    half = sample_fraction(frame, 0.5, seed=3)
    assert half["prdtypecode"].value_counts().to_dict() == {10: 25, 40: 10, 50: 2}
    assert half.index.equals(sample_fraction(frame, 0.5, seed=3).index)
    assert not half.index.equals(sample_fraction(frame, 0.5, seed=4).index)
    assert sample_fraction(frame, 1.0, seed=3) is frame


def test_preprocess_counts_what_it_drops():
    frame = products([10, 10, 40, 50], ["Livre ancien", "Livre ancien", "<br/>", "Console"])
    cleaned, dropped = preprocess(frame, {"min_text_chars": 3, "drop_duplicates": True})
    assert cleaned["designation"].tolist() == ["Livre ancien", "Console"]
    assert dropped == {"no usable text": 1, "exact duplicate": 1}
    kept, _ = preprocess(frame, {"min_text_chars": 3, "drop_duplicates": False})
    assert len(kept) == 3


def test_split_is_stratified_and_refuses_tiny_classes():
    frame = products([10] * 40 + [40] * 20 + [50] * 10)
    train, test = split(frame, {"test_size": 0.2, "seed": 0}, Path("clean.csv"))
    assert test["prdtypecode"].value_counts().to_dict() == {10: 8, 40: 4, 50: 2}
    assert train.index.intersection(test.index).empty and len(train) + len(test) == 70
    with pytest.raises(InputError, match="class 60 has 1 row"):
        split(products([10] * 40 + [60]), {"test_size": 0.2, "seed": 0}, Path("clean.csv"))
    with pytest.raises(InputError, match="at least one row per class"):
        split(frame, {"test_size": 0.02, "seed": 0}, Path("clean.csv"))


def test_featurize_and_train_give_a_pipeline_that_predicts_raw_text():
    titles = {10: "livre ancien roman", 2583: "piscine hors sol bâche", 1560: "canapé lit matelas"}
    frame = products([c for c in titles for _ in range(6)], [f"{t} {i}" for t in titles.values() for i in range(6)])
    vectorizer = build_vectorizer({**PARAMS["featurize"], "word_min_df": 1, "char_min_df": 1, "n_jobs": 1})
    x = vectorizer.fit_transform(frame)
    assert x.shape[0] == 18 and x.dtype == np.float32
    classifier = fit_linear_svc(x, frame["prdtypecode"].to_numpy(), PARAMS["model"])
    model = make_picklable_stable(Pipeline([("features", vectorizer), ("classifier", classifier)]))
    assert not hasattr(vectorizer.named_steps["tfidf"].transformers_[0][1], "_stop_words_id")
    raw = pd.DataFrame({"designation": ["Grande PISCINE"], "description": ["<p>b&acirc;che</p>"]})
    assert model.predict(raw).tolist() == [2583]


def test_holdout_model_sees_only_the_train_split_and_the_shipped_one_all_rows():
    rng = np.random.default_rng(0)
    x, y = sparse.csr_matrix(rng.random((60, 8)), dtype=np.float32), np.repeat([10, 40, 50], 20)
    train, test = (x[:45], y[:45]), (x[45:], y[45:])
    holdout, shipped = fit_holdout_and_shipped(train, test, PARAMS["model"])
    assert (holdout.coef_ == fit_linear_svc(*train, PARAMS["model"]).coef_).all()
    assert (shipped.coef_ == fit_linear_svc(x, y, PARAMS["model"]).coef_).all()
    assert (shipped.coef_ != holdout.coef_).any()
    # Without refit, both names hold the same train-split classifier; one process is enough.
    for no_refit in ({"refit_on_all": False, "n_jobs": 1}, {"refit_max_rows": 59}):
        holdout, shipped = fit_holdout_and_shipped(train, test, {**PARAMS["model"], **no_refit})
        assert shipped is holdout and (holdout.coef_ == fit_linear_svc(*train, PARAMS["model"]).coef_).all()
    # At the threshold it still refits.
    _, shipped = fit_holdout_and_shipped(train, test, {**PARAMS["model"], "refit_max_rows": 60})
    assert (shipped.coef_ == fit_linear_svc(x, y, PARAMS["model"]).coef_).all()


def test_char_ngrams_can_be_switched_off_and_bounds_are_checked():
    params = {**PARAMS["featurize"], "char_max_features": 0, "n_jobs": 1}
    steps = build_vectorizer(params).named_steps["tfidf"].transformers
    assert [name for name, _, _ in steps] == ["word"]
    with pytest.raises(InputError, match="char_ngram_min"):
        build_vectorizer({**params, "char_ngram_min": 6, "char_ngram_max": 3})


def test_headline_and_class_metrics():
    actual, predicted = np.array([10, 10, 40, 40]), np.array([10, 40, 40, 40])
    metrics = headline_metrics(actual, predicted, n_train=16)
    assert metrics["accuracy"] == 0.75 and metrics["n_train"] == 16 and metrics["n_test"] == 4
    per_class = class_metrics(actual, predicted)
    assert per_class["10"] == {"precision": 1.0, "recall": 0.5, "f1": 0.666667, "support": 2}


def test_confusion_axes_name_each_class_in_code_order_and_the_cells_are_readable():
    actual, predicted = np.array([2583, 10, 1140, 40, 2583]), np.array([2583, 40, 1140, 40, 10])
    fig = confusion_figure(actual, predicted)
    ax = fig.axes[0]
    expected = [
        "10 Livres d'occasion / anciens",
        "40 Jeux vidéo (import, neufs)",
        "1140 Figurines et produits dérivés (pop culture)",
        "2583 Piscine et spa",
    ]
    assert [t.get_text() for t in ax.get_xticklabels()] == [name.split()[0] for name in expected]  # codes
    assert [t.get_text() for t in ax.get_yticklabels()] == expected
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class (code)", "actual class")
    assert min(float(text.get_fontsize()) for text in ax.texts) >= 9  # the shares in the cells


def test_confusion_cells_are_scikit_learns_confusion_matrix():
    rng = np.random.default_rng(3)
    actual, predicted = rng.choice([10, 40, 1140, 2583], 300), rng.choice([10, 40, 1140, 2583, 2905], 300)
    share = np.asarray(confusion_figure(actual, predicted).axes[0].images[0].get_array())
    counts = confusion_matrix(actual, predicted, labels=[10, 40, 1140, 2583, 2905])
    assert np.array_equal(share, counts / np.maximum(counts.sum(axis=1, keepdims=True), 1))


def test_the_evaluate_stage_imports_neither_scikit_learn_nor_matplotlib_at_the_top():
    """matplotlib is its drawing process's (tests/test_linear_weights.py runs the stage: never scikit-learn)."""
    probe = (
        "import sys, mlops_rakuten.stages.evaluate; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'matplotlib')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_prediction_table_keeps_codes_and_adds_labels():
    table = prediction_table(np.array([2583, 10]), np.array([10, 10]))
    assert table.to_dict("list") == {
        "actual": [2583, 10],
        "predicted": [10, 10],
        "actual_class": ["2583 Piscine et spa", "10 Livres d'occasion / anciens"],
        "predicted_class": ["10 Livres d'occasion / anciens"] * 2,
    }


def test_read_params_checks_every_key(tmp_path: Path):
    assert read_params(ROOT / "params.yaml", "model") == PARAMS["model"]
    path = tmp_path / "params.yaml"
    model, split_, pre = PARAMS["model"], PARAMS["split"], PARAMS["preprocess"]
    for section, bad, message in [
        ("model", {**PARAMS, "model": {**model, "C": "big"}}, r"model.C = big, expected a number"),
        ("split", {**PARAMS, "split": {**split_, "test_size": 1.5}}, r"split.test_size = 1.5"),
        ("preprocess", {**PARAMS, "preprocess": {**pre, "drop_duplicates": "yes"}}, "expected true or false"),
        ("model", {**PARAMS, "model": {**model, "seed": True}}, "model.seed = true"),
        ("model", {**PARAMS, "model": {k: v for k, v in model.items() if k != "tol"}}, "missing key model.tol"),
        ("model", {**PARAMS, "model": {**model, "gamma": 1}}, "unknown key model.gamma"),
        ("model", {k: v for k, v in PARAMS.items() if k != "model"}, "missing section 'model'"),
    ]:
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(InputError, match=message):
            read_params(path, section)
