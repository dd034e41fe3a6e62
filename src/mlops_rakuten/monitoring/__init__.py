"""Watching the served model: the prediction log, drift against the training data, gated retraining.

Layers: ``prediction_log`` (written by the server) and ``log_files`` (read back) know nothing of drift;
``signals`` turns products into the numbers drift compares; ``drift`` and ``retrain`` sit on top.
"""
