"""This repository's models, through a life in a scratch copy: the pipeline trains each one, the
registry takes it with its lineage and report, a promotion merges, the reconciler deploys it,
traffic reaches it, drift and live performance give a verdict, and the evidence pack verifies.

It runs on the repository's own pipeline, parameters and models (whatever they are now), and
builds every state it needs itself: the copy starts pristine (no version promoted) with a
registry of its own, so the live repository's manifests, registry and servers are never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import base_env, git_commit_all, run_mlops

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def run(repo: Path, *cmd: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    """A command in the scratch copy, against its own registry (never the one mlops.yaml names)."""
    registry = {"MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    if cmd[0] == "mlops":
        proc = run_mlops(*cmd[1:], cwd=repo, env_extra=registry, timeout=900)
    else:
        env = {**base_env(), **registry, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        proc = subprocess.run(
            [str(BIN / cmd[0]), *cmd[1:]], cwd=repo, env=env, capture_output=True, text=True
        )
    assert proc.returncode in ok, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


def test_every_model_trains_deploys_answers_and_proves_it(scratch: Path, tmp_path: Path) -> None:
    repo = scratch
    models = sorted(p.name for p in (repo / "models").iterdir() if p.is_dir())
    first_env = yaml.safe_load((repo / "mlops.yaml").read_text())["environments"][0]["name"]

    run(repo, "dvc", "repro", "pipelines/dvc.yaml")
    # dvc.lock, as dvc asks: the lineage names this commit (a lock committed already, as a team's
    # repository has it after its first training, is reproduced exactly: nothing to commit then)
    if git(repo, "status", "--porcelain").strip():
        git_commit_all(repo, "Train every model")
    registered = as_json(run(repo, "mlops", "register", "--report", "--output", "json"))["versions"]
    assert sorted(v["model"] for v in registered) == models
    for version in registered:
        assert version["result"] == "registered" and len(version["artifact_sha256"]) == 64
        assert version["report"]["passed"], f"{version['model']} misses a threshold of its model.yaml"

    try:
        for version in registered:
            promoted = as_json(
                run(
                    repo,
                    "mlops",
                    "promote",
                    version["model"],
                    "--to",
                    first_env,
                    "--version",
                    str(version["version"]),
                    "--no-checkout",
                    "--no-pr",
                    "--output",
                    "json",
                )
            )
            assert (
                promoted["checked_out"] is False and git(repo, "branch", "--show-current").strip() == "main"
            )
            git(repo, "merge", "--quiet", "--no-ff", "-m", f"Merge {promoted['branch']}", promoted["branch"])
        applied = as_json(run(repo, "mlops", "reconcile", "--env", first_env, "--output", "json"))
        assert {r["model"]: r["result"] for r in applied["results"]} == {m: "healthy" for m in models}

        for model in models:
            labels = tmp_path / f"{model}-labels.csv"
            sent = as_json(
                run(
                    repo,
                    "mlops",
                    "predict",
                    model,
                    "--env",
                    first_env,
                    "--input",
                    f"pipelines/data/{model}/test.csv",
                    "--labels-out",
                    str(labels),
                    "--output",
                    "json",
                )
            )
            assert sent["failed"] == {} and sum(sent["versions"].values()) == sent["rows"]
            performance = as_json(
                run(
                    repo,
                    "mlops",
                    "feedback",
                    model,
                    "--env",
                    first_env,
                    "--labels",
                    str(labels),
                    "-o",
                    "json",
                    ok=(0, 1),
                )
            )
            assert performance["status"] in ("ok", "degraded") and performance["joined"] == sent["rows"]
        drift = as_json(run(repo, "mlops", "drift", "--env", first_env, "--output", "json", ok=(0, 1)))
        assert sorted(r["model"] for r in drift["results"]) == models
        assert all(r["status"] in ("no-drift", "drift") for r in drift["results"])

        for model in models:
            pack = tmp_path / f"{model}.zip"
            run(repo, "mlops", "evidence", model, "--env", first_env, "-o", str(pack))
            assert "intact" in run(repo, "mlops", "evidence", "verify", str(pack)).stdout
    finally:
        run(repo, "mlops", "down", ok=(0, 1, 2))
