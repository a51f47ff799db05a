"""`mlops history`: what served when and why, from the real records, git and registry of a
repository driven through promotions by pull request (merge commits), a failed deployment and
its automatic rollback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ..conftest import run_mlops
from .helpers import merge_pull_request, records, set_manifest

pytestmark = pytest.mark.slow


def test_history_tells_what_served_when_and_why(served: Path) -> None:
    repo = served
    merge_pull_request(repo, 12, "staging", "Approved-by: @risk-lead", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    time.sleep(1.1)
    merge_pull_request(repo, 13, "staging", "Approved-by: @risk-lead", version=2)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    time.sleep(1.1)
    set_manifest(repo, "staging", "Promote churn v3 to staging", version=3)  # its predict raises
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 1

    proc = run_mlops("history", "churn", "--env", "staging", "-o", "json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    told = json.loads(proc.stdout)
    first, second = told["stretches"]
    assert (first["version"], first["why"]["pull_request"], first["until"]) == (1, 12, second["since"])
    assert second["version"] == 2 and second["until"] is None
    why = second["why"]
    assert why["pull_request"] == 13 and why["subject"] == "Promote churn v2 to staging"
    assert {"key": "Approved-By", "value": "@risk-lead"} in why["claimed_in_git"]  # a claim, shown as one
    assert second["record"]["revision"] == records(repo)[1]["revision"]
    (rollback,) = second["rollbacks"]  # v3 failed; v2 never stopped serving
    assert (rollback["from"], rollback["to"]) == (3, 2) and rollback["cause"].startswith("HealthCheckFailed")

    at = second["since"]
    proc = run_mlops("history", "churn", "--env", "staging", "--at", at, "-o", "json", cwd=repo)
    (only,) = json.loads(proc.stdout)["stretches"]
    assert only["version"] == 2
    just_before = run_mlops(
        "history", "churn", "--env", "staging", "--at", first["since"], "-o", "json", cwd=repo
    )
    assert [s["version"] for s in json.loads(just_before.stdout)["stretches"]] == [1]
    before_all = run_mlops("history", "churn", "--env", "staging", "--at", "2020-01-01", cwd=repo)
    assert before_all.returncode == 1
    table = run_mlops("history", "churn", "--env", "staging", cwd=repo).stdout
    assert "#12" in table and "#13" in table
    bad = run_mlops("history", "churn", "--env", "staging", "--at", "last tuesday", cwd=repo)
    assert bad.returncode == 2 and "--at: 'last tuesday' is not a time (expected ISO 8601" in bad.stderr
    wrong = run_mlops("history", "churn", "--env", "../x", cwd=repo)
    assert wrong.returncode == 2 and "--env '../x': not an environment" in wrong.stderr


def test_history_answers_without_the_registry_and_names_the_gap(served: Path) -> None:
    repo = served
    merge_pull_request(repo, 21, "staging", "Approved-by: @risk-lead", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    down = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    proc = run_mlops("history", "churn", "--env", "staging", "-o", "json", cwd=repo, env_extra=down)
    assert proc.returncode == 0, proc.stderr
    told = json.loads(proc.stdout)
    assert told["stretches"][0]["why"]["pull_request"] == 21
    assert told["gaps"] and told["gaps"][0].startswith("registry:")
