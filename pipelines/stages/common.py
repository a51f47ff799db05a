"""Paths and parameters shared by the stages (all relative to pipelines/, DVC's wdir)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent.parent


def params(model: str) -> dict[str, Any]:
    models: dict[str, Any] = yaml.safe_load((HERE / "params.yaml").read_text())["models"]
    if model not in models:
        raise SystemExit(
            f"params.yaml: models.{model}: missing (expected a section per model; have {sorted(models)})"
        )
    section: dict[str, Any] = models[model]
    return section


def data_dir(model: str) -> Path:
    path = HERE / "data" / model
    path.mkdir(parents=True, exist_ok=True)
    return path


def out_dir(model: str) -> Path:
    path = HERE / "out" / model
    path.mkdir(parents=True, exist_ok=True)
    return path
