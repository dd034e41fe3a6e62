"""The paths and file names the project agrees on, relative to the project root.

dvc.yaml passes each stage its paths as arguments; the code around the pipeline (raw data,
registry, experiments, serving, tools) reads them here. tests/test_paths.py checks that they
match dvc.yaml.
"""

from __future__ import annotations

# The challenge's raw CSVs, as the Rakuten France challenge names them, in the DVC-tracked folder.
RAW_DIR = "data/raw"
RAW_POINTER = "data/raw.dvc"
X_FILE = "X_train_update.csv"
Y_FILE = "Y_train_CVw08PX.csv"

PARAMS = "params.yaml"
PIPELINE = "dvc.yaml"
DVC_LOCK = "dvc.lock"
MODEL = "models/model.joblib"  # the shipped model (dvc.yaml artifacts: rakuten-classifier)
HOLDOUT_MODEL = "models/holdout_model.joblib"
METRICS = "metrics/metrics.json"
CLASS_METRICS = "metrics/classes.json"
CONFUSION_PLOT = "plots/confusion_matrix.png"
LEARNING_CURVE = "plots/learning_curve.png"
