"""Slices of the retrain gate built by hand: groups of (true class, production's prediction,
candidate's prediction, how many), for the decision, report and mutation tests."""

from __future__ import annotations

import numpy as np

from mlops_rakuten.monitoring.slices import Slice

# pools, garden furniture, furniture, old books, garden tools
A, B, C, D, E = 2583, 2582, 1560, 10, 2585


def built(name: str, *groups: tuple[int, int, int, int]) -> Slice:
    """A slice of ``name`` made of ``groups`` of (true class, production's, candidate's, how many)."""
    actual: list[int] = []
    production: list[int] = []
    candidate: list[int] = []
    for true, prod, cand, count in groups:
        actual += [true] * count
        production += [prod] * count
        candidate += [cand] * count
    return Slice(name, np.array(actual), np.array(production), np.array(candidate))
