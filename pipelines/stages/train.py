"""Stage train: fit the classifier, on a GPU when the runner has one, and record which device.

learner: auto | hist_gradient_boosting | xgboost. `auto` takes XGBoost on CUDA when both
xgboost (the optional `gpu` extra that GPU runners install) and an NVIDIA GPU are present,
else scikit-learn's HistGradientBoostingClassifier on the CPU, which works everywhere.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import time
from importlib.util import find_spec
from typing import Any

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from .churn_data import TARGET
from .common import data_dir, out_dir, params

ID_COLUMNS = ["customer_id"]


def cuda_devices() -> list[str]:
    """Names of the NVIDIA GPUs the driver reports (empty without a driver or GPU)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        proc = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return (
        [line.strip() for line in proc.stdout.splitlines() if line.startswith("GPU ")]
        if proc.returncode == 0
        else []
    )


def choose(learner: str, device: str, gpus: list[str], have_xgboost: bool) -> tuple[str, str]:
    """(learner, device) for the requested ones, given what the machine has."""
    if device == "cuda" and not gpus:
        raise SystemExit(
            "params.yaml: train.device: cuda, but no NVIDIA GPU is visible (expected auto or cpu here)"
        )
    if learner == "xgboost" and not have_xgboost:
        raise SystemExit(
            "params.yaml: train.learner: xgboost is not installed (expected `pip install .[gpu]`)"
        )
    use_gpu = device != "cpu" and bool(gpus)
    if learner == "auto":
        learner = "xgboost" if use_gpu and have_xgboost else "hist_gradient_boosting"
    if learner == "hist_gradient_boosting":
        return learner, "cpu"  # scikit-learn has no GPU path
    return learner, "cuda" if use_gpu else "cpu"


def build(
    learner: str, device: str, cfg: dict[str, Any], categorical: list[str], numeric: list[str]
) -> Pipeline:
    encode = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    if learner == "xgboost":
        from xgboost import XGBClassifier

        classifier: Any = XGBClassifier(
            n_estimators=int(cfg["max_iter"]),
            learning_rate=float(cfg["learning_rate"]),
            max_leaves=int(cfg["max_leaf_nodes"]),
            tree_method="hist",
            device=device,
            random_state=int(cfg["seed"]),
        )
    else:
        classifier = HistGradientBoostingClassifier(
            max_iter=int(cfg["max_iter"]),
            learning_rate=float(cfg["learning_rate"]),
            max_leaf_nodes=int(cfg["max_leaf_nodes"]),
            random_state=int(cfg["seed"]),
        )
    return Pipeline([("encode", encode), ("classify", classifier)])


def main(model: str) -> None:
    cfg = params(model)["train"]
    train = pd.read_csv(data_dir(model) / "train.csv")
    features = train.drop(columns=[TARGET, *ID_COLUMNS])
    categorical = features.select_dtypes(include="object").columns.tolist()
    numeric = [c for c in features.columns if c not in categorical]
    gpus = cuda_devices()
    learner, device = choose(str(cfg["learner"]), str(cfg["device"]), gpus, find_spec("xgboost") is not None)
    pipeline = build(learner, device, cfg, categorical, numeric)
    started = time.perf_counter()
    pipeline.fit(features, train[TARGET])
    seconds = time.perf_counter() - started
    out = out_dir(model)
    joblib.dump(pipeline, out / "model.joblib")
    info = {
        "learner": learner,
        "device": device,
        "device_name": gpus[0] if device == "cuda" else platform.processor() or platform.machine(),
        "rows": len(train),
        "features": {"categorical": categorical, "numeric": numeric},
        "fit_seconds": round(seconds, 3),
    }
    (out / "train_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
