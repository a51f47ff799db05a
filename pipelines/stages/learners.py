"""The built-in learners, each an implementation of the training contract (pipelines/learners/):
`fit(features, target, task, params) -> a fitted scikit-learn estimator`.

    hist_gradient_boosting  scikit-learn's HistGradientBoosting{Classifier,Regressor}: the CPU
                            everywhere (the example's learner)
    xgboost                 XGBoost's XGB{Classifier,Regressor}, on CUDA when params say so
                            (the optional `gpu` extra)
    lightgbm                LightGBM's LGBM{Classifier,Regressor} (CPU)

Each encodes text columns one-hot inside its Pipeline and reads the same parameters:
max_iter, learning_rate, max_leaf_nodes, seed (and device for xgboost).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def encoder(features: pd.DataFrame) -> ColumnTransformer:
    categorical = features.select_dtypes(include=["object", "category", "string"]).columns.tolist()
    return ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )


def _fitted(features: pd.DataFrame, target: pd.Series, estimator: Any) -> Pipeline:
    return Pipeline([("encode", encoder(features)), ("learn", estimator)]).fit(features, target)


def hist_gradient_boosting(
    features: pd.DataFrame, target: pd.Series, task: str, params: dict[str, Any]
) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    kind = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    estimator = kind(
        max_iter=int(params["max_iter"]),
        learning_rate=float(params["learning_rate"]),
        max_leaf_nodes=int(params["max_leaf_nodes"]),
        random_state=int(params["seed"]),
    )
    return _fitted(features, target, estimator)


def xgboost(features: pd.DataFrame, target: pd.Series, task: str, params: dict[str, Any]) -> Any:
    from xgboost import XGBClassifier, XGBRegressor

    kind = XGBRegressor if task == "regression" else XGBClassifier
    estimator = kind(
        n_estimators=int(params["max_iter"]),
        learning_rate=float(params["learning_rate"]),
        max_leaves=int(params["max_leaf_nodes"]),
        tree_method="hist",
        device=str(params.get("device", "cpu")),
        random_state=int(params["seed"]),
    )
    if task != "regression" and sorted(target.unique().tolist()) != list(range(target.nunique())):
        raise SystemExit(
            "params.yaml: train.learner: xgboost learns classes 0..k-1 only "
            f"(found {sorted(target.unique().tolist())[:5]}; expected lightgbm or hist_gradient_boosting)"
        )
    return _fitted(features, target, estimator)


def lightgbm(features: pd.DataFrame, target: pd.Series, task: str, params: dict[str, Any]) -> Any:
    from lightgbm import LGBMClassifier, LGBMRegressor

    kind = LGBMRegressor if task == "regression" else LGBMClassifier
    estimator = kind(
        n_estimators=int(params["max_iter"]),
        learning_rate=float(params["learning_rate"]),
        num_leaves=int(params["max_leaf_nodes"]),
        random_state=int(params["seed"]),
        verbose=-1,
    )
    return _fitted(features, target, estimator)


BUILT_IN = {"hist_gradient_boosting": hist_gradient_boosting, "xgboost": xgboost, "lightgbm": lightgbm}
