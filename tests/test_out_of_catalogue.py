"""The drift benchmark's fallback shift: English listings the demo catalogue's words do not cover."""

from __future__ import annotations

import re

from mlops_rakuten.core.demo_data import generate
from mlops_rakuten.devtools.out_of_catalogue import english_products
from mlops_rakuten.text import product_text

WORD = re.compile(r"\w\w+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def test_english_listings_are_seeded_and_mostly_unknown_to_the_demo_catalogue():
    products = english_products(300, seed=7)
    assert products.equals(english_products(300, seed=7)) and not products.equals(english_products(300, seed=8))
    assert list(products.columns) == ["designation", "description"] and products["designation"].str.len().min() > 5
    x_rows, _ = generate(3_000, seed=1)  # rows of index, designation, description, productid, imageid
    known = {w for row in x_rows for w in words(product_text(row[1], row[2]))}
    unknown = [
        sum(w not in known for w in found) / len(found)
        for found in (words(product_text(d, s)) for d, s in products.itertuples(index=False))
    ]
    # more than half their words unknown (units and numbers are shared): `unknown_majority` counts nearly all
    assert sum(share > 0.5 for share in unknown) >= 0.9 * len(unknown), sorted(unknown)[:30]
