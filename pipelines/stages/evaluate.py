"""Stage evaluate: metrics of the trained model on the held-out test set (DVC metrics)."""

from __future__ import annotations

import json
import sys

import joblib
import pandas as pd
from mlops_gitops.metrics import classification_metrics

from .churn_data import TARGET
from .common import data_dir, out_dir
from .train import ID_COLUMNS


def main(model: str) -> None:
    test = pd.read_csv(data_dir(model) / "test.csv")
    pipeline = joblib.load(out_dir(model) / "model.joblib")
    features = test.drop(columns=[TARGET, *ID_COLUMNS])
    scores = pipeline.predict_proba(features)[:, 1]
    metrics = classification_metrics(test[TARGET].to_numpy(), scores)
    (out_dir(model) / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
