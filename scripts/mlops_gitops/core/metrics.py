"""The metrics the pipeline and `mlops report` share, so "roc_auc" means one thing everywhere."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

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


FAIRNESS_METRICS = ("demographic_parity_difference", "equalized_odds_difference")


def sensitive_groups(values: Any, bins: list[float] | None) -> np.ndarray:
    """The group of each row: the value itself (categorical), or its bin ("18-39", "65+")
    when `bins` gives ascending lower edges for a numeric column."""
    if not bins:
        return np.asarray(values).astype(str)
    edges = sorted(bins)
    labels = [
        f"{lo:g}-{hi - 1:g}" if float(hi).is_integer() else f"{lo:g}-<{hi:g}" for lo, hi in pairwise(edges)
    ]
    labels.append(f"{edges[-1]:g}+")
    index = np.searchsorted(np.asarray(edges, dtype=float), np.asarray(values, dtype=float), side="right") - 1
    return np.array([labels[i] if i >= 0 else f"<{edges[0]:g}" for i in index])


def fairness_metrics(
    y_true: np.ndarray, scores: np.ndarray, features: Any, spec: dict[str, Any], threshold: float = 0.5
) -> dict[str, float]:
    """Per sensitive feature, fairlearn's demographic-parity and equalized-odds differences of
    the thresholded predictions: `fairness.<feature>.<metric>`, the largest gap between groups
    (0 is parity). `spec` is model.yaml's `fairness.sensitive_features`."""
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    predicted = (scores >= threshold).astype(int)
    found: dict[str, float] = {}
    for feature, options in sorted((spec or {}).items()):
        groups = sensitive_groups(features[feature], (options or {}).get("bins"))
        found[f"fairness.{feature}.demographic_parity_difference"] = round(
            float(demographic_parity_difference(y_true, predicted, sensitive_features=groups)), 6
        )
        found[f"fairness.{feature}.equalized_odds_difference"] = round(
            float(equalized_odds_difference(y_true, predicted, sensitive_features=groups)), 6
        )
    return found
