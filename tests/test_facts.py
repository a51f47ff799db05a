"""`mlops facts`: the policy input for a promotion, from real git history and a real MLflow
registry (sqlite; the version is registered directly with lineage tags, as `mlops register`
writes them). GitHub's review API cannot be reached from here: approvals come from event
payloads, and the API path is tested through its small fetch interface."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from mlops_gitops.facts import approvals

from .conftest import run_mlops
from .workflows import sandbox

pytestmark = pytest.mark.slow
NOW = "2026-11-23T10:00:00Z"


@pytest.fixture
def promoted(tmp_path: Path) -> tuple[Path, str]:
    from mlflow import MlflowClient

    repo = sandbox(tmp_path / "repo")
    model = sorted(p.name for p in (repo / "models").iterdir())[0]
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    client.create_registered_model(model)
    client.create_model_version(
        model,
        source=(tmp_path / "artifact").as_uri(),
        tags={
            "mlops.git.commit": "abc123",
            "mlops.metrics": json.dumps({"roc_auc": 0.84, "f1": 0.59}),
            "mlops.data": json.dumps({"pipelines/data/x/raw.csv": "md5"}),
            "mlops.params": json.dumps({"seed": 7}),
            "mlops.device": "cpu",
            "mlops.artifact_sha256": "f" * 64,
            "mlops.signature": "true",
            "mlops.report.passed": "true",
            "mlops.report.baseline": "none",
        },
    )
    run_mlops("promote", model, "--to", "staging", "--version", "1", "--reason", "test", cwd=repo, check=True)
    return repo, model


def test_facts_describe_the_promotion(promoted: tuple[Path, str]) -> None:
    repo, model = promoted
    proc = run_mlops("facts", "--base", "main", "--now", NOW, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    assert doc["change"] == {
        "model": model,
        "environment": "staging",
        "path": f"environments/staging/{model}.yaml",
        "from_version": None,
        "to_version": 1,
        "head_rev": head,
        "base_rev": doc["change"]["base_rev"],
    }
    assert doc["manifest"]["version"] == 1 and doc["previous"]["version"] is None
    assert doc["model"]["name"] == model and doc["model"]["risk_tier"] in ("low", "medium", "high")
    version = doc["version"]
    assert version["metrics"] == {"roc_auc": 0.84, "f1": 0.59}
    assert version["lineage"]["commit"] == "abc123" and version["lineage"]["device"] == "cpu"
    assert version["artifact_sha256"] == "f" * 64 and version["signature"] is True
    assert version["report"] == {"passed": True, "baseline": "none"}
    assert doc["approvals"] == {"known": False, "source": "none", "reviewers": [], "count": 0}
    assert doc["drift"]["status"] == "unknown" and doc["now"] == NOW
    again = run_mlops("facts", "--base", "main", "--now", NOW, cwd=repo)
    assert again.stdout == proc.stdout  # deterministic


def test_approvals_from_a_review_event(promoted: tuple[Path, str], tmp_path: Path) -> None:
    repo, _ = promoted
    event = tmp_path / "review.json"
    event.write_text(
        json.dumps(
            {
                "review": {"state": "approved", "user": {"login": "risk-officer"}},
                "pull_request": {"number": 7},
            }
        )
    )
    (doc,) = json.loads(
        run_mlops("facts", "--base", "main", "--now", NOW, "--event", str(event), cwd=repo).stdout
    )
    assert doc["approvals"] == {"known": True, "source": "event", "reviewers": ["risk-officer"], "count": 1}


def test_approvals_from_the_api_count_each_reviewer_latest_state() -> None:
    reviews = [
        {"user": {"login": "a"}, "state": "APPROVED"},
        {"user": {"login": "b"}, "state": "APPROVED"},
        {"user": {"login": "b"}, "state": "CHANGES_REQUESTED"},
        {"user": {"login": "c"}, "state": "APPROVED"},
    ]
    result = approvals({"pull_request": {"number": 3}}, fetch=lambda number: reviews if number == 3 else None)
    assert result == {"known": True, "source": "github-api", "reviewers": ["a", "c"], "count": 2}
    assert approvals({"pull_request": {"number": 3}}, fetch=lambda number: None)["known"] is False


def test_no_change_gives_no_documents_and_a_bad_time_is_refused(promoted: tuple[Path, str]) -> None:
    repo, _ = promoted
    assert json.loads(run_mlops("facts", "--base", "HEAD", "--now", NOW, cwd=repo).stdout) == []
    proc = run_mlops("facts", "--base", "main", "--now", "yesterday", cwd=repo)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "error: --now 'yesterday': not a time (expected RFC 3339, e.g. 2026-11-23T10:00:00Z)"
    )
