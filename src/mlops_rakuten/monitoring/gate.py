"""The retrain gate's numbers, apart so that building the command line imports nothing heavy."""

# The gate (docs/monitoring.md): a candidate may be registered only if its weighted F1 is at most
# F1_MARGIN below production's, and no class with at least MIN_SUPPORT frozen products loses more
# than CLASS_DROP of F1. The margin absorbs the jitter of a refit on a few more rows; the class rule
# stops a better average from hiding one category that broke (mislabelled uploads hit one class). Under
# MIN_SUPPORT products one product moves a class's F1 by more than CLASS_DROP: such classes only count
# through the weighted F1.
F1_MARGIN = 0.005
CLASS_DROP = 0.05
MIN_SUPPORT = 20
