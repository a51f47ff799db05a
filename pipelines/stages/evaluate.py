"""Stage evaluate: metrics of the trained model on the held-out test set (DVC metrics), the
task's own (scripts/mlops_gitops/core/metrics.py: `of_task`).

With sensitive features named in `models/<model>/model.yaml` (`fairness:`), a binary
classifier's metrics also hold fairlearn's demographic-parity and equalized-odds differences per
feature; they are registered with the others and judged by the promotion policy.
"""

from __future__ import annotations

import json
import sys

import joblib
import pandas as pd
from mlops_gitops.core.metrics import fairness_metrics, of_task, positive_scores
from mlops_gitops.core.tasks import Task

from .common import data_dir, definition, features_of, out_dir, target, task


def outputs(fitted: object, features: pd.DataFrame, kind: Task) -> object:
    """What the served model answers for `features`: probabilities or predictions."""
    from mlflow.pyfunc import PythonModel

    if isinstance(fitted, PythonModel):
        return fitted.predict(features)
    return getattr(fitted, kind.predict_fn)(features)


def main(model: str) -> None:
    kind = task(model)
    test = pd.read_csv(data_dir(model) / "test.csv")
    fitted = joblib.load(out_dir(model) / "model.joblib")
    features = features_of(model, test)
    found = outputs(fitted, features, kind)
    info = json.loads((out_dir(model) / "train_info.json").read_text())
    metrics = of_task(kind, test[target(model)].to_numpy(), found, info.get("classes"))
    sensitive = (definition(model).get("fairness") or {}).get("sensitive_features") or {}
    if kind is Task.BINARY and sensitive:
        truth = (test[target(model)].to_numpy() == info["classes"][-1]).astype(int)
        metrics |= fairness_metrics(truth, positive_scores(found), features, sensitive)
    (out_dir(model) / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
