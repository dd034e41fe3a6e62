"""The retrain gate's numbers, apart so that building the command line imports nothing heavy.

The rule they set (monitoring/slices.py, docs/monitoring.md): on every named slice of products, the
candidate's weighted F1 minus production's gets a 95 % interval from a paired bootstrap; the candidate
is refused when a slice's whole interval lies below -F1_MARGIN, or a class's whole interval below
-CLASS_DROP.
"""

# A loss the bootstrap can prove but under half a point of weighted F1 (one product in 200) is what a
# refit on a few more rows moves anyway; refusing it would block new data for nothing. The margin is
# applied to the interval's upper bound, so noise alone never refuses, however small the slice.
F1_MARGIN = 0.005
# Mislabelled uploads hit one class: a better average must not hide one category that broke. Only
# classes with MIN_SUPPORT products in the slice are judged: under 20, one product moves a class's F1
# by more than CLASS_DROP and its interval is too wide to prove anything.
CLASS_DROP = 0.05
MIN_SUPPORT = 20
# Under 30 products the percentile bootstrap's interval is itself unreliable (one product is over
# three points of F1): such a slice is shown as "too few products to say" and judged on nothing.
MIN_PRODUCTS = 30
CONFIDENCE = 0.95
# 1,000 replicates put the 2.5 % and 97.5 % bounds within about 0.002 of where 100,000 would; fixed
# seed: the same comparison always gets the same interval, so a decision can be reproduced.
REPLICATES = 1000
SEED = 20240601
