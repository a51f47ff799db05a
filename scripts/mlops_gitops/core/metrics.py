"""The metrics the pipeline, `mlops report` and `mlops feedback` share, so "roc_auc" means one
thing everywhere; `of_task` picks a task's (core.tasks)."""

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


def positive_scores(outputs: Any) -> np.ndarray:
    """A binary classifier's score of its positive class: p1 of [p0, p1] rows, or the scores."""
    values = np.asarray(outputs, dtype=float)
    return values[:, -1] if values.ndim == 2 else values


def multiclass_metrics(y_true: Any, probabilities: Any, classes: list[Any]) -> dict[str, float]:
    """Metrics of class probabilities, one column per class in `classes`' order."""
    scores = np.asarray(probabilities, dtype=float)
    labels = np.asarray(classes)
    predicted = labels[scores.argmax(axis=1)]
    truth = np.asarray(y_true)
    clipped = np.clip(scores, 1e-7, 1)
    found = {
        "accuracy": round(float(skm.accuracy_score(truth, predicted)), 6),
        "f1_macro": round(float(skm.f1_score(truth, predicted, average="macro", zero_division=0)), 6),
        "f1_weighted": round(float(skm.f1_score(truth, predicted, average="weighted", zero_division=0)), 6),
        "log_loss": round(
            float(skm.log_loss(truth, clipped / clipped.sum(axis=1, keepdims=True), labels=labels)), 6
        ),
    }
    if len(set(truth.tolist())) == len(labels):  # every class present: the one-vs-rest AUC exists
        normalised = scores / scores.sum(axis=1, keepdims=True)
        found["roc_auc_ovr"] = round(
            float(skm.roc_auc_score(truth, normalised, multi_class="ovr", labels=labels)), 6
        )
    return found


def regression_metrics(y_true: Any, predicted: Any) -> dict[str, float]:
    truth = np.asarray(y_true, dtype=float)
    values = np.asarray(predicted, dtype=float).reshape(len(truth))
    return {
        "r2": round(float(skm.r2_score(truth, values)), 6),
        "rmse": round(float(np.sqrt(skm.mean_squared_error(truth, values))), 6),
        "mae": round(float(skm.mean_absolute_error(truth, values)), 6),
    }


def of_task(task: Any, y_true: Any, outputs: Any, classes: list[Any] | None = None) -> dict[str, float]:
    """The metrics of `task` (a core.tasks.Task) for a model's outputs on labelled rows: a
    classifier's probabilities (`classes` names their columns; for binary, the last is positive)
    or a regressor's predictions."""
    from .tasks import Task

    if task is Task.REGRESSION:
        return regression_metrics(y_true, outputs)
    if task is Task.MULTICLASS:
        if classes is None:
            raise ValueError("multiclass metrics need the classes the probabilities are in order of")
        return multiclass_metrics(y_true, outputs, classes)
    truth = np.asarray(y_true)
    if classes is not None:  # labels such as "no"/"yes": the last class is the positive one
        truth = (truth == np.asarray(classes)[-1]).astype(int)
    return classification_metrics(truth, positive_scores(outputs))


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
