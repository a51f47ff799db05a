"""What every benchmark shares: import paths, quiet tools, and where results go."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "scripts", ROOT):  # the engine, and tests/ (the set-up helpers)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", DVC_NO_ANALYTICS="true")


def save(name: str, summary: dict[str, Any]) -> Path:
    """Write benchmarks/results/<name>.json (git-ignored); returns its path."""
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return out


def registered_model(work: Path) -> tuple[Any, str, int, Path]:
    """A sandbox repository under `work` with its first model registered once (a real scikit-learn
    version) and verified into `work/artifacts`: (registry, model, version, its local path)."""
    from tests.engine.registered import register_version, registry_of
    from tests.engine.workflows import sandbox

    repo = sandbox(work / "repo")
    registry = registry_of(repo)
    model = sorted(registry.repo.models)[0]
    version = register_version(repo, model)
    return registry, model, version, registry.fetch_verified(model, version, work / "artifacts").path


def server_spec(path: Path, model: str, version: int, local: Path, log: Path) -> Path:
    """The JSON spec `python -m mlops_gitops.serving.server --spec` runs: one version, all the traffic."""
    primary = [{"version": version, "path": str(local), "percent": 100}]
    spec = {"model": model, "environment": "bench", "primary": primary, "shadow": None, "log": str(log)}
    path.write_text(json.dumps(spec))
    return path


def stop(servers: list[Any], work: Path) -> None:
    """Terminate the benchmark's server processes, wait for each, and remove its work folder."""
    import shutil

    for server in servers:
        server.terminate()
    for server in servers:
        server.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
