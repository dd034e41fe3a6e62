"""Developer tools: benchmarks, cross-validation and the throw-away project copy used by tests.

Not part of the product: nothing in core, stages, ops or serve imports from here.
"""
