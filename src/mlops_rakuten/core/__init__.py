"""The machine-learning core: params, data frames, features, the solvers, prediction, class names.

Nothing here runs ``dvc``, ``git`` or a server; everything above builds on it.
"""
