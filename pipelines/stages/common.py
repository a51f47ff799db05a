"""Paths, parameters and the model's definition, shared by the stages (all relative to
pipelines/, DVC's wdir)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from mlops_gitops.core.tasks import Task

HERE = Path(__file__).resolve().parent.parent


def params(model: str) -> dict[str, Any]:
    models: dict[str, Any] = yaml.safe_load((HERE / "params.yaml").read_text())["models"]
    if model not in models:
        raise SystemExit(
            f"params.yaml: models.{model}: missing (expected a section per model; have {sorted(models)})"
        )
    section: dict[str, Any] = models[model]
    return section


def definition(model: str) -> dict[str, Any]:
    """models/<model>/model.yaml, as written (`mlops validate` checks it)."""
    path = HERE.parent / "models" / model / "model.yaml"
    found: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return found


def task(model: str) -> Task:
    return Task(definition(model).get("task", Task.BINARY.value))


def target(model: str) -> str:
    column = definition(model).get("target_column")
    if not column:
        raise SystemExit(f"models/{model}/model.yaml: target_column: missing (expected the label column)")
    return str(column)


def features_of(model: str, frame: Any) -> Any:
    """A prepared frame's features: every column but the target and the ids (the same rule
    registration and the report apply: core.tasks.features_of)."""
    from mlops_gitops.core.tasks import features_of as of_definition

    target(model)  # a missing target_column is one clear line here
    return of_definition(definition(model), frame)


def data_dir(model: str) -> Path:
    path = HERE / "data" / model
    path.mkdir(parents=True, exist_ok=True)
    return path


def out_dir(model: str) -> Path:
    path = HERE / "out" / model
    path.mkdir(parents=True, exist_ok=True)
    return path
