"""What drift compares, computed the same way for the reference (training split) and a window of predictions.

Each product becomes: its predicted class, its top-1 score, its cleaned text length, and the share of its
word tokens the model's vectorizer has never seen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline


def word_vectorizer(pipeline: Pipeline) -> TfidfVectorizer:
    """The fitted word TF-IDF vectorizer inside a saved model (features -> tfidf -> "word")."""
    tfidf = pipeline.named_steps["features"].named_steps["tfidf"]
    return dict((name, vectorizer) for name, vectorizer, _ in tfidf.transformers_)["word"]


def token_counts(pipeline: Pipeline, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per text: word tokens, and how many of them are not in the model's vocabulary."""
    vectorizer = word_vectorizer(pipeline)
    analyze, vocabulary = vectorizer.build_analyzer(), vectorizer.vocabulary_
    tokens, unknown = np.zeros(len(texts), dtype=np.int64), np.zeros(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        words = analyze(text)
        tokens[i] = len(words)
        unknown[i] = sum(1 for word in words if word not in vocabulary)
    return tokens, unknown


def unknown_share(tokens: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Per product: unknown / tokens; 1 for a product without word tokens (the model can read nothing of it:
    an empty or all-symbol feed must look unknown, not perfectly known)."""
    tokens = np.asarray(tokens, dtype=np.float64)
    return np.divide(np.asarray(unknown, dtype=np.float64), tokens, out=np.ones_like(tokens), where=tokens > 0)
