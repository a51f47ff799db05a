"""Lineage of a trained model: what it was made from, where, and by which code.

Everything is read from files the pipeline leaves behind (dvc.lock, params.yaml, the
stage outputs) and from git and the environment, so it can be recomputed and checked.
The result becomes the version's tags in the registry (`tags.lineage_tags`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import MlopsError
from ..core.gitinfo import head_info

PIPELINE_DIR = "pipelines"
PACKAGES = ("mlflow", "scikit-learn", "pandas", "numpy", "dvc", "skops", "xgboost", "lightgbm")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: Path) -> str:
    """One digest for a directory: every file's relative path and content, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def _fit_seconds(outputs: PipelineOutputs) -> float | None:
    """The train stage's timing, kept beside its outputs (fit.json), when this machine trained."""
    try:
        return float(json.loads((outputs.estimator.parent / "fit.json").read_text())["fit_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class PipelineOutputs:
    """Where the pipeline put one model's artifacts."""

    model: str
    root: Path

    @property
    def base(self) -> Path:
        return self.root / PIPELINE_DIR

    @property
    def estimator(self) -> Path:
        return self.base / "out" / self.model / "model.joblib"

    @property
    def metrics(self) -> Path:
        return self.base / "out" / self.model / "metrics.json"

    @property
    def train_info(self) -> Path:
        return self.base / "out" / self.model / "train_info.json"

    @property
    def test_data(self) -> Path:
        return self.base / "data" / self.model / "test.csv"

    @property
    def lock(self) -> Path:
        return self.base / "dvc.lock"

    def require(self) -> None:
        for path in (self.estimator, self.metrics, self.train_info, self.test_data, self.lock):
            if not path.is_file():
                rel = path.relative_to(self.root).as_posix()
                raise MlopsError(
                    f"{rel}: missing (expected the pipeline's output for model {self.model!r}: "
                    "run `make train` first)"
                )


def _lock_hashes(outputs: PipelineOutputs) -> dict[str, str]:
    """md5 of every data file the model's stages read or wrote, as recorded in dvc.lock."""
    lock = yaml.safe_load(outputs.lock.read_text()) or {}
    hashes: dict[str, str] = {}
    for stage, body in (lock.get("stages") or {}).items():
        if not stage.endswith(f"@{outputs.model}"):
            continue
        for entry in [*(body.get("deps") or []), *(body.get("outs") or [])]:
            path = str(entry.get("path", ""))
            if path.startswith("data/") and "md5" in entry:
                hashes[f"{PIPELINE_DIR}/{path}"] = entry["md5"]
    if not hashes:
        raise MlopsError(
            f"{PIPELINE_DIR}/dvc.lock: no stages for model {outputs.model!r} "
            "(expected `make train` to have run for it)"
        )
    return dict(sorted(hashes.items()))


def uncommitted(root: Path, model: str) -> list[str]:
    """The pipeline inputs of `model` (its stages' code and data, params, dvc.lock, its definition)
    whose content the current commit does not hold: what makes a lineage dirty."""
    from ..core.gitinfo import uncommitted_files

    outputs = PipelineOutputs(model, root)
    return uncommitted_files(root, _depends_on(outputs)) if outputs.lock.is_file() else []


def _depends_on(outputs: PipelineOutputs) -> list[str]:
    """Repository-relative paths of what the model's stages read (dvc.lock's deps), and the
    pipeline's own definition, parameters and lock."""
    lock = yaml.safe_load(outputs.lock.read_text()) or {}
    found = {f"{PIPELINE_DIR}/{name}" for name in ("dvc.yaml", "dvc.lock", "params.yaml")}
    found.add(f"models/{outputs.model}/model.yaml")  # its task, target and thresholds
    for stage, body in (lock.get("stages") or {}).items():
        if stage.endswith(f"@{outputs.model}"):
            for entry in body.get("deps") or []:
                path = os.path.normpath(f"{PIPELINE_DIR}/{entry.get('path', '')}")
                if not path.startswith(".."):
                    found.add(Path(path).as_posix())
    return sorted(found)


def _params(outputs: PipelineOutputs) -> dict[str, Any]:
    models = (yaml.safe_load((outputs.base / "params.yaml").read_text()) or {}).get("models") or {}
    if outputs.model not in models:
        raise MlopsError(
            f"{PIPELINE_DIR}/params.yaml: models.{outputs.model}: missing "
            "(expected a parameter section for every trained model)"
        )
    section: dict[str, Any] = models[outputs.model]
    return section


def packages() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def runner() -> dict[str, str]:
    """The machine that ran this: a GitHub runner's name and labels when on CI."""
    return {
        "name": os.environ.get("RUNNER_NAME") or socket.gethostname(),
        # who started the run that trained (GitHub's actor): never an approver of its promotion
        "actor": os.environ.get("GITHUB_ACTOR", ""),
        "labels": os.environ.get("MLOPS_RUNNER_LABELS", "local"),
        "os": f"{platform.system()} {platform.release()}",
    }


def collect(root: Path, model: str) -> dict[str, Any]:
    """The lineage of the model the pipeline last produced, as one JSON-able document."""
    outputs = PipelineOutputs(model, root)
    outputs.require()
    info = json.loads(outputs.train_info.read_text())
    params = _params(outputs)
    data = _lock_hashes(outputs)
    estimator_sha = sha256_file(outputs.estimator)
    fingerprint = hashlib.sha256(
        json.dumps({"estimator": estimator_sha, "data": data, "params": params}, sort_keys=True).encode()
    ).hexdigest()
    return {
        "git": head_info(root, _depends_on(outputs)),
        "dvc_lock_sha256": sha256_file(outputs.lock),
        "data": data,
        "params": params,
        "metrics": json.loads(outputs.metrics.read_text()),
        "training": {
            "learner": info["learner"],
            "device": info["device"],
            "device_name": info["device_name"],
            "rows": info["rows"],
            "fit_seconds": _fit_seconds(outputs),
            **({"classes": info["classes"]} if "classes" in info else {}),
        },
        "runner": runner(),
        "python": platform.python_version(),
        "packages": packages(),
        "estimator_sha256": estimator_sha,
        "fingerprint": fingerprint,
    }
