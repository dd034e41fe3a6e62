"""Products the demo catalogue never had, for drift benchmarks on a machine without the genuine sample.

English listings of goods outside the 27 demo product lines (electronics, hardware, groceries): words the
model has (almost) never seen, in titles and descriptions shaped like a marketplace's. Seeded, so a
benchmark's shifted traffic is the same on every run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ADJECTIVES = "wireless rechargeable stainless portable waterproof ergonomic compact heavy-duty organic smart".split()
GOODS = (
    "headphones charger screwdriver blender thermostat router backpack kettle flashlight toaster "
    "drill-bit extension-cord coffee-beans olive-oil dog-leash yoga-mat air-fryer monitor-arm"
).split()
FEATURES = (
    "with fast charging|for everyday use|with lifetime warranty|compatible with most devices|"
    "easy to clean|ships in 24 hours|includes carrying case|energy saving mode"
).split("|")
UNITS = ("pack of 2", "1 kg", "500 ml", "set of 12", "10 ft", "USB-C")


def english_products(rows: int, seed: int) -> pd.DataFrame:
    """`rows` English listings (designation, description) from outside the demo catalogue."""
    rand = np.random.default_rng(seed)

    def pick(words, size=None):
        return rand.choice(words, size=size)

    titles = [f"{pick(ADJECTIVES).title()} {pick(GOODS).replace('-', ' ')} {pick(UNITS)}".strip() for _ in range(rows)]
    descriptions = [" ".join(f"{f.capitalize()}." for f in pick(FEATURES, size=2)) for _ in range(rows)]
    return pd.DataFrame({"designation": titles, "description": descriptions})
