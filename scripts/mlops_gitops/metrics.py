"""The metrics the pipeline and `mlops report` share, so "roc_auc" means one thing everywhere."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def classification_metrics(
    y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    predicted = (scores >= threshold).astype(int)
    return {
        "roc_auc": round(float(skm.roc_auc_score(y_true, scores)), 6),
        "average_precision": round(float(skm.average_precision_score(y_true, scores)), 6),
        "f1": round(float(skm.f1_score(y_true, predicted, zero_division=0)), 6),
        "precision": round(float(skm.precision_score(y_true, predicted, zero_division=0)), 6),
        "recall": round(float(skm.recall_score(y_true, predicted, zero_division=0)), 6),
        "accuracy": round(float(skm.accuracy_score(y_true, predicted)), 6),
        "log_loss": round(float(skm.log_loss(y_true, np.clip(scores, 1e-7, 1 - 1e-7))), 6),
    }
