"""Stage evaluate: metrics of the trained model on the held-out test set (DVC metrics).

With sensitive features named in `models/<model>/model.yaml` (`fairness:`), the metrics also
hold fairlearn's demographic-parity and equalized-odds differences per feature; they are
registered with the others and judged by the promotion policy.
"""

from __future__ import annotations

import json
import sys

import joblib
import pandas as pd
import yaml
from mlops_gitops.core.metrics import classification_metrics, fairness_metrics

from .churn_data import TARGET
from .common import HERE, data_dir, out_dir
from .train import ID_COLUMNS


def main(model: str) -> None:
    test = pd.read_csv(data_dir(model) / "test.csv")
    pipeline = joblib.load(out_dir(model) / "model.joblib")
    features = test.drop(columns=[TARGET, *ID_COLUMNS])
    scores = pipeline.predict_proba(features)[:, 1]
    metrics = classification_metrics(test[TARGET].to_numpy(), scores)
    definition = yaml.safe_load((HERE.parent / "models" / model / "model.yaml").read_text()) or {}
    sensitive = (definition.get("fairness") or {}).get("sensitive_features") or {}
    metrics |= fairness_metrics(test[TARGET].to_numpy(), scores, features, sensitive)
    (out_dir(model) / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
