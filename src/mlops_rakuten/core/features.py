"""The text feature extractor: raw products in, one sparse TF-IDF matrix out.

It is the first step of the saved model, so prediction applies exactly the
cleaning and vocabulary that training used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.text import product_texts


def build_vectorizer(params: dict[str, Any]) -> Pipeline:
    """Unfitted extractor from the ``featurize`` params section."""
    if params["char_ngram_min"] > params["char_ngram_max"]:
        raise InputError(
            f"params: featurize.char_ngram_min ({params['char_ngram_min']}) must be <= "
            f"featurize.char_ngram_max ({params['char_ngram_max']})"
        )
    common = {"sublinear_tf": params["sublinear_tf"], "strip_accents": params["strip_accents"], "dtype": np.float32}
    word = TfidfVectorizer(
        ngram_range=(1, params["word_ngram_max"]),
        min_df=params["word_min_df"],
        max_features=params["word_max_features"],
        **common,
    )
    columns = [("word", word, "text")]
    if params["char_max_features"] != 0:
        char = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(params["char_ngram_min"], params["char_ngram_max"]),
            min_df=params["char_min_df"],
            max_features=params["char_max_features"],
            **common,
        )
        columns.append(("char", char, "head"))
    return Pipeline(
        [
            ("clean", FunctionTransformer(product_texts, kw_args={"head_chars": params["char_max_chars"]})),
            ("tfidf", ColumnTransformer(columns, sparse_threshold=1.0, n_jobs=params["n_jobs"])),
        ]
    )


def clean_products(extractor: Pipeline, frame: pd.DataFrame) -> pd.DataFrame:
    """The extractor's own cleaning step on raw products: the ``text`` and ``head`` it vectorizes."""
    clean = extractor.named_steps["clean"]
    return clean.func(frame, **clean.kw_args)


def vectorize_cleaned(extractor: Pipeline, texts: pd.DataFrame) -> sparse.csr_matrix:
    """The features of texts ``clean_products`` returned (a caller that needs them too cleans once)."""
    blocks = [
        vectorizer.transform(texts[column])
        for name, vectorizer, column in extractor.named_steps["tfidf"].transformers_
        if name != "remainder"
    ]
    return sparse.hstack(blocks, format="csr")


def make_picklable_stable(estimator: Any) -> Any:
    """Drop run-specific state so the same fit pickles to the same bytes.

    TfidfVectorizer keeps ``_stop_words_id`` (an ``id()``, i.e. a memory
    address) that is only a cache; it would make every saved model differ.
    """
    for step in _walk(estimator):
        if isinstance(step, TfidfVectorizer) and hasattr(step, "_stop_words_id"):
            del step._stop_words_id
    return estimator


def _walk(estimator: Any) -> Iterator[Any]:
    yield estimator
    children = []
    if isinstance(estimator, Pipeline):
        children = [step for _, step in estimator.steps]
    elif isinstance(estimator, ColumnTransformer):
        children = [trans for _, trans, _ in getattr(estimator, "transformers_", estimator.transformers)]
    for child in children:
        yield from _walk(child)
