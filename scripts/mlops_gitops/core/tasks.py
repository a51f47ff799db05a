"""A model's task (model.yaml's `task:`), and everything that follows from it.

    binary-classification      scores: each row's probabilities [p0, p1] (`predict_proba`);
                               metrics roc_auc, average_precision, f1, precision, recall,
                               accuracy, log_loss (at 0.5 on p1)
    multiclass-classification  scores: each row's probabilities, one per class in the order of
                               the version's `classes` (the estimator's `classes_`); metrics
                               accuracy, f1_macro, f1_weighted, roc_auc_ovr, log_loss
    regression                 predictions: one number per row (`predict`); metrics r2, rmse,
                               mae

The pipeline's stages, `mlops register`, `mlops report`, `mlops feedback` and `mlops model add`
read the task here, so a metric name means the same thing in every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Task(StrEnum):
    BINARY = "binary-classification"
    MULTICLASS = "multiclass-classification"
    REGRESSION = "regression"

    @property
    def classifies(self) -> bool:
        return self is not Task.REGRESSION

    @property
    def predict_fn(self) -> str:
        """The estimator method whose answer the served model returns."""
        return "predict_proba" if self.classifies else "predict"

    @property
    def short(self) -> str:
        return self.value.removesuffix("-classification")


SHORT = {task.short: task for task in Task}
# Metrics where less is better (the report's regression check and the policies read these).
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
# A target with at most this many distinct values is a class label; more is a number to predict
# (when numeric) or no task at all (text with too many values).
MAX_CLASSES = 50


@dataclass(frozen=True)
class Defaults:
    """What `mlops model add` writes into a new model's definition for its task: the primary
    metric, the thresholds every candidate must reach, and the live metric `mlops feedback`
    follows. Starting values only: the team sets what its decision needs."""

    primary: str
    thresholds: dict[str, dict[str, float]]
    live_metric: str


DEFAULTS = {
    Task.BINARY: Defaults("roc_auc", {"roc_auc": {"min": 0.75}, "f1": {"min": 0.5}}, "roc_auc"),
    Task.MULTICLASS: Defaults("f1_macro", {"f1_macro": {"min": 0.5}, "accuracy": {"min": 0.6}}, "accuracy"),
    Task.REGRESSION: Defaults("r2", {"r2": {"min": 0.5}}, "r2"),
}


# The canary's prediction checks (deploy.analysis) that mean something for each task: a
# classifier's class shares; a binary classifier's or a regressor's score distribution (PSI).
PREDICTION_CHECKS = {
    Task.BINARY: ("max_class_shift", "max_score_psi"),
    Task.MULTICLASS: ("max_class_shift",),
    Task.REGRESSION: ("max_score_psi",),
}


ALL_PREDICTION_CHECKS = frozenset(name for names in PREDICTION_CHECKS.values() for name in names)


def features_of(definition: dict[str, Any], frame: Any) -> Any:
    """A table's features for a model: every column but its target and its id columns."""
    dropped = [definition.get("target_column"), *(definition.get("id_columns") or [])]
    return frame.drop(columns=[c for c in dropped if c in frame.columns])


def of(definition: dict[str, Any]) -> Task:
    """The task of a loaded model definition (validated by its schema)."""
    return Task(definition.get("task", Task.BINARY.value))


def parse(text: str) -> Task:
    """A task as a user writes it: `binary`, `multiclass`, `regression`, or the full name."""
    found = SHORT.get(text) or next((t for t in Task if t.value == text), None)
    if found is None:
        raise ValueError(f"{text!r} (expected {', '.join(SHORT)})")
    return found


def infer(values: Any) -> Task:
    """The task a target column asks for: two values is binary, up to MAX_CLASSES integers or
    labels is multiclass, other numbers are regression. ValueError says why none fits."""
    import pandas as pd

    series = pd.Series(values)
    if series.isna().any():
        raise ValueError(f"{int(series.isna().sum())} rows have no value (expected a value in every row)")
    distinct = series.nunique()
    if distinct < 2:
        raise ValueError(f"one value only ({series.iloc[0]!r}) (expected two or more to learn from)")
    if distinct == 2:
        return Task.BINARY
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    integral = numeric and bool((series == series.round()).all())
    if numeric and not (integral and distinct <= MAX_CLASSES):
        return Task.REGRESSION
    if distinct <= MAX_CLASSES:
        return Task.MULTICLASS
    raise ValueError(
        f"{distinct} distinct labels (expected numbers for regression, or at most {MAX_CLASSES} classes)"
    )


def fits(task: Task, values: Any) -> str | None:
    """Why `values` cannot be the target of `task`, or None when they can."""
    import pandas as pd

    series = pd.Series(values)
    try:
        inferred = infer(series)
    except ValueError as exc:
        return str(exc)
    if task is Task.REGRESSION and not pd.api.types.is_numeric_dtype(series):
        return "labels, not numbers (expected numbers for regression)"
    if task is Task.BINARY and inferred is not Task.BINARY:
        return f"{series.nunique()} distinct values (expected two for binary)"
    if task is Task.MULTICLASS and series.nunique() > MAX_CLASSES:
        return f"{series.nunique()} distinct values (expected at most {MAX_CLASSES} classes)"
    return None
