"""`mlops policy impact`: a change to policies/ judged by its consequences on what is deployed.

Real git history (a main branch and a policy branch), a real MLflow registry holding the
deployed versions, the real OPA engine evaluating the old and the new policies."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ..conftest import git_commit_all, run_mlops
from .mlflow_server import free_port

NOW = "2026-11-23T10:00:00Z"

REPLICAS = """package manifests

import rego.v1

deny_single_replica_in_production contains msg if {
	input.environment == "production"
	input.version != null
	input.target.replicas < 2
	msg := sprintf(
		"%s/%s: production runs at least 2 replicas (has %d)",
		[input.environment, input.model, input.target.replicas],
	)
}
"""

FLOOR = """package promotion

import rego.v1

deny_auc_floor contains msg if {
	input.version.metrics.roc_auc < 0.9
	msg := sprintf(
		"%s v%d: roc_auc %v is below the floor of 0.9",
		[input.change.model, input.version.number, input.version.metrics.roc_auc],
	)
}
"""


def set_version(repo: Path, env: str, version: int) -> None:
    path = repo / "environments" / env / "churn.yaml"
    path.write_text(re.sub(r"^version: .*$", f"version: {version}", path.read_text(), flags=re.MULTILINE))


@pytest.fixture
def deployed(registered: Path, tmp_path: Path) -> Path:
    """main: churn v1 in staging and in production, as registered in the registry."""
    repo = tmp_path / "repo"
    shutil.copytree(registered, repo, symlinks=True)
    set_version(repo, "staging", 1)
    set_version(repo, "production", 1)
    git_commit_all(repo, "v1 everywhere")
    subprocess.run(["git", "checkout", "--quiet", "-b", "policy-change"], cwd=repo, check=True)
    return repo


def impact(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_mlops("policy", "impact", "--base", "main", "--now", NOW, *args, cwd=repo)


def test_a_stricter_policy_lists_the_deployed_versions_it_would_deny(deployed: Path) -> None:
    (deployed / "policies/manifests/replicas.rego").write_text(REPLICAS)
    (deployed / "policies/promotion/floor.rego").write_text(FLOOR)
    git_commit_all(deployed, "policies: two replicas in production; an AUC floor")

    proc = impact(deployed, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["changed_policies"] == ["policies/manifests/replicas.rego", "policies/promotion/floor.rego"]
    found = {(i["namespace"], i["subject"]): i for i in result["impacts"]}
    assert set(found) == {
        ("manifests", "churn v1 in production"),
        ("promotion", "churn v1 in staging"),
        ("promotion", "churn v1 in production"),
    }, found  # staging's manifest and every workflow: unchanged, not listed
    assert {i["status"] for i in found.values()} == {"newly denied"}
    (replicas,) = found[("manifests", "churn v1 in production")]["added"]
    assert replicas == (
        "failure deny_single_replica_in_production: "
        "production/churn: production runs at least 2 replicas (has 1)"
    )
    assert found[("promotion", "churn v1 in staging")]["added"] == [
        "failure deny_auc_floor: churn v1: roc_auc 0.84 is below the floor of 0.9"
    ]
    counts = result["counts"]
    assert counts["newly denied"] == 3 and counts["unchanged"] > 0

    markdown = impact(deployed, "-o", "markdown").stdout
    assert markdown.startswith("### Policy change impact: ⚠️ **3 newly denied**")
    row = "| newly denied | churn v1 in production | `environments/production/churn.yaml` | + failure "
    assert row in markdown

    assert impact(deployed, "--fail-on-impact").returncode == 1


def test_a_relaxed_policy_is_listed_as_newly_allowed(deployed: Path) -> None:
    """main already holds the stricter rule; the branch removes it again."""
    subprocess.run(["git", "checkout", "--quiet", "main"], cwd=deployed, check=True)
    (deployed / "policies/manifests/replicas.rego").write_text(REPLICAS)
    git_commit_all(deployed, "policies: two replicas in production")
    subprocess.run(["git", "checkout", "--quiet", "-b", "relax"], cwd=deployed, check=True)
    (deployed / "policies/manifests/replicas.rego").unlink()
    git_commit_all(deployed, "policies: one replica is enough")

    result = json.loads(impact(deployed, "-o", "json").stdout)
    assert result["changed_policies"] == ["policies/manifests/replicas.rego"]
    (only,) = result["impacts"]
    assert (only["status"], only["subject"], only["added"]) == ("newly allowed", "churn v1 in production", [])
    assert only["removed"][0].startswith("failure deny_single_replica_in_production:")


def test_no_policy_change_no_impact_and_a_registry_that_does_not_answer_is_noted(deployed: Path) -> None:
    markdown = impact(deployed, "-o", "markdown")
    assert (markdown.returncode, markdown.stdout) == (0, "")
    assert "no policy changed" in markdown.stderr

    (deployed / "policies/manifests/replicas.rego").write_text(REPLICAS)
    git_commit_all(deployed, "policies: two replicas in production")
    offline = run_mlops(
        "policy",
        "impact",
        "--base",
        "main",
        "-o",
        "json",
        cwd=deployed,
        env_extra={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"},
    )
    assert offline.returncode == 0, offline.stderr
    result = json.loads(offline.stdout)
    assert [i["subject"] for i in result["impacts"]] == ["churn v1 in production"]  # manifests still judged
    assert len(result["notes"]) == 2 and all("promotion policies not assessed" in n for n in result["notes"])
