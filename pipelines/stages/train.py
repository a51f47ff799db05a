"""Stage train: fit the model with its learner, on a GPU when the runner has one, and record
which learner, device, task and classes.

`train.learner` (params.yaml): a built-in (stages/learners.py) or the team's own function,
`learners.<module>:<function>` (the contract: pipelines/learners/__init__.py).
`auto` takes XGBoost on CUDA when both xgboost (the optional `gpu` extra that GPU runners
install) and an NVIDIA GPU are present, else scikit-learn's HistGradientBoosting on the CPU,
which works everywhere.
"""

from __future__ import annotations

import importlib
import json
import platform
import re
import shutil
import subprocess
import sys
import time
from importlib.util import find_spec
from typing import Any

import joblib
import pandas as pd

from .common import HERE, data_dir, features_of, out_dir, params, target, task
from .learners import BUILT_IN

# `learners.<module>:<function>`: a function in a module of pipelines/learners/ (nothing else)
ENTRY_POINT = re.compile(r"^learners(\.[A-Za-z_][A-Za-z0-9_]*)+:[A-Za-z_][A-Za-z0-9_]*$")
LEARNERS_EXPECTED = f"auto, {', '.join(BUILT_IN)} or learners.<module>:<function>"


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
    if learner not in ("auto", *BUILT_IN) and not ENTRY_POINT.match(learner):
        raise SystemExit(f"params.yaml: train.learner: {learner!r} (expected {LEARNERS_EXPECTED})")
    if learner == "xgboost" and not have_xgboost:
        raise SystemExit(
            "params.yaml: train.learner: xgboost is not installed (expected `pip install .[gpu]`)"
        )
    use_gpu = device != "cpu" and bool(gpus)
    if learner == "auto":
        learner = "xgboost" if use_gpu and have_xgboost else "hist_gradient_boosting"
    if learner != "xgboost":
        return learner, "cpu" if learner in BUILT_IN else ("cuda" if use_gpu else "cpu")
    return learner, "cuda" if use_gpu else "cpu"


def entry_point(name: str) -> Any:
    """The learner function `name` names: a built-in, or `learners.<module>:<function>`, whose
    module must be a file under pipelines/learners/ (checked before it is imported)."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    module, _, function = name.partition(":")
    path = HERE.joinpath(*module.split(".")).with_suffix(".py")
    if not path.resolve().is_relative_to((HERE / "learners").resolve()) or not path.is_file():
        raise SystemExit(
            f"params.yaml: train.learner: {name}: no file pipelines/{module.replace('.', '/')}.py"
        )
    found = getattr(importlib.import_module(module), function, None)
    if not callable(found):
        raise SystemExit(
            f"params.yaml: train.learner: {name}: "
            f"no function {function!r} in pipelines/{path.relative_to(HERE)}"
        )
    return found


def classes_of(fitted: Any, name: str, kind: Any) -> list[Any] | None:
    """A classifier's classes, in the order of its probabilities' columns (JSON-able); what the
    contract asks of the returned model is checked here, in one line."""
    from mlflow.pyfunc import PythonModel

    method = "predict" if isinstance(fitted, PythonModel) or not kind.classifies else "predict_proba"
    if not callable(getattr(fitted, method, None)):
        raise SystemExit(
            f"{name} returned {type(fitted).__name__}, which has no {method} (expected a {kind} model)"
        )
    if not kind.classifies:
        return None
    classes = getattr(fitted, "classes_", None)
    if classes is None:
        raise SystemExit(
            f"{name} returned {type(fitted).__name__}, which has no classes_ "
            "(expected a classifier's classes)"
        )
    return [c.item() if hasattr(c, "item") else c for c in classes]


def main(model: str) -> None:
    cfg = params(model)["train"]
    kind = task(model)
    train = pd.read_csv(data_dir(model) / "train.csv")
    features = features_of(model, train)
    gpus = cuda_devices()
    learner, device = choose(
        str(cfg["learner"]), str(cfg.get("device", "auto")), gpus, find_spec("xgboost") is not None
    )
    fit = entry_point(learner)
    started = time.perf_counter()
    fitted = fit(features, train[target(model)], kind.value, {**cfg, "device": device})
    seconds = time.perf_counter() - started
    classes = classes_of(fitted, f"params.yaml: train.learner: {learner}", kind)
    out = out_dir(model)
    joblib.dump(fitted, out / "model.joblib")
    categorical = features.select_dtypes(include=["object", "category", "string"]).columns.tolist()
    info = {
        "learner": learner,
        "device": device,
        "device_name": gpus[0] if device == "cuda" else platform.processor() or platform.machine(),
        "task": kind.value,
        "rows": len(train),
        "features": {
            "categorical": categorical,
            "numeric": [c for c in features.columns if c not in categorical],
        },
        **({"classes": classes} if classes is not None else {}),
    }
    (out / "train_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    # How long the fit took is kept beside the outputs, never in one: a timing in a DVC output
    # would change dvc.lock at every retraining, and a version trained in CI would never have a
    # clean lineage (dvc.yaml does not declare this file; registration reads it when present).
    (out / "fit.json").write_text(json.dumps({"fit_seconds": round(seconds, 3)}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
