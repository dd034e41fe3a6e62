"""The retrain gate's slices from the batch record: each source's held-out rows, and all of them together.

A batch's held-out rows (core/batches.py) are in every test split and no model is fitted on them, so
both holdout models can be judged on them: one slice per source (a supplier whose labels or products
differ shows up there), and one of every held-out batch row. Rows production's train split holds (a
production built before rows were held out) are left out, so neither model has seen a slice's rows.
Quarantined and rejected batches are not in the candidate's data, so not in its slices either. A
small slice is still listed; the decision (slices.py) reports it as too few products to judge.
"""

from __future__ import annotations

import pandas as pd

from mlops_rakuten.core.batches import Batch, batch_of, held_out_rows

ALL_BATCHES = "held out, all batches"


def slice_name(source: str) -> str:
    return f"held out, source {source}"


def batch_slices(
    test: pd.DataFrame, production_train: pd.Index, batches: list[Batch]
) -> list[tuple[str, pd.DataFrame, str]]:
    """(name, products, one line on where they come from) per source, then all sources together; [] without batches."""
    if not batches:
        return []
    held = test[held_out_rows(test.index, batches) & ~test.index.isin(production_train)]
    owner = pd.Series(batch_of(held.index, batches), index=held.index)
    source_of = {b.id: b.source for b in batches}
    slices = []
    for source in sorted({b.source for b in batches}):
        ids = [b.id for b in batches if b.source == source]
        rows = held[owner.isin(ids)]
        slices.append(
            (
                slice_name(source),
                rows,
                f"{len(rows)} held-out rows of the {len(ids)} batch(es) from {source} in the candidate's test split",
            )
        )
    sources = sorted({source_of[i] for i in owner.unique()})
    about = f"{len(held)} held-out rows of {len(batches)} batch(es) from {len(sources)} source(s), never fitted on"
    return [*slices, (ALL_BATCHES, held, about)]
