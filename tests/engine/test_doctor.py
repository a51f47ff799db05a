"""`mlops doctor` against GitHub's settings: GitHub's API cannot be reached from here, so a
stand-in answers behind `core.github`'s interface (`get`), with the shapes GitHub's REST API
documents for variables, secrets, environments, branch protection and runners. The registry's
and the storage's checks run against the real team registry in test_team_registry.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ..conftest import run_mlops
from .workflows import sandbox

REPOSITORY = "acme/models"
PR_CHECKS = ("lint", "validate", "policy", "test")


class GitHubStandIn:
    """GitHub's REST API for one repository, as a dictionary of paths (a stand-in: GitHub
    cannot be reached from here). A path it does not hold fails as `gh api` fails: one line."""

    def __init__(self, answers: dict[str, Any]):
        self.answers = {f"repos/{REPOSITORY}/{path}": answer for path, answer in answers.items()}
        self.asked: list[str] = []

    def get(self, path: str) -> Any:
        from mlops_gitops.core.errors import MlopsError

        self.asked.append(path)
        if path not in self.answers:
            raise MlopsError(f"gh api {path}: HTTP 404: Not Found")
        return self.answers[path]

    def send(self, method: str, path: str, body: dict[str, Any]) -> Any:
        raise AssertionError(f"doctor only reads: {method} {path}")


def settled(repo: Path) -> dict[str, Any]:
    """A repository whose settings are all there."""
    from mlops_gitops.deploy.doctor import workflow_reads

    reads = workflow_reads(repo)
    reviewers = {
        "type": "required_reviewers",
        "reviewers": [{"type": "Team", "reviewer": {"slug": "model-risk"}}],
    }
    return {
        "actions/variables": {"variables": [{"name": n} for n in sorted(reads["vars"])]},
        "actions/secrets": {"secrets": [{"name": n} for n in sorted(reads["secrets"])]},
        "environments/staging": {"name": "staging", "protection_rules": []},
        "environments/production": {"name": "production", "protection_rules": [reviewers]},
        "branches/main/protection": {
            "required_status_checks": {"strict": True, "checks": [{"context": c} for c in PR_CHECKS]},
            "required_pull_request_reviews": {
                "dismiss_stale_reviews": True, "require_code_owner_reviews": True
            },
        },
        "actions/runners": {
            "runners": [
                {"status": "online", "labels": [{"name": n} for n in ("self-hosted", "linux", "gpu")]},
                {"status": "online", "labels": [{"name": n} for n in ("self-hosted", "deploy")]},
            ]
        },
    }  # fmt: skip


def findings(repo: Path, answers: dict[str, Any]) -> dict[str, Any]:
    from mlops_gitops.core.config import load_repo
    from mlops_gitops.deploy.doctor import check_runners, check_settings

    loaded = load_repo(repo)
    github = GitHubStandIn(answers)
    found = check_settings(loaded, github, REPOSITORY) + check_runners(loaded, github, REPOSITORY)
    return {f.check: f for f in found}


def test_doctor_names_what_github_lacks_with_its_fix(tmp_path: Path) -> None:
    repo = sandbox(tmp_path / "repo")
    good = findings(repo, settled(repo))
    assert {f.status for f in good.values()} <= {"ok"}, [f for f in good.values() if f.status != "ok"]
    assert "variable MLFLOW_TRACKING_URI" in good and "secret MLFLOW_TRAINER_PASSWORD" in good

    answers = settled(repo)
    answers["actions/variables"]["variables"] = [{"name": "MLOPS_STATE_DIR"}]
    answers["actions/secrets"]["secrets"] = []
    answers["environments/production"]["protection_rules"] = []
    answers["branches/main/protection"]["required_pull_request_reviews"]["dismiss_stale_reviews"] = False
    answers["branches/main/protection"]["required_status_checks"]["checks"] = [{"context": "lint"}]
    answers["actions/runners"]["runners"][0]["status"] = "offline"
    del answers["environments/staging"]
    bad = findings(repo, answers)
    uri = bad["variable MLFLOW_TRACKING_URI"]
    assert (uri.status, uri.fix) == ("missing", "gh variable set MLFLOW_TRACKING_URI --repo acme/models")
    assert bad["secret MLFLOW_GATE_PASSWORD"].fix == "gh secret set MLFLOW_GATE_PASSWORD --repo acme/models"
    assert bad["secret MLOPS_GATE_TOKEN"].status == "warn"  # optional: said, not required
    assert bad["secret MLOPS_SIGNING_KEY"].status == "missing"  # train.yml's key: no identity listed
    keyless = (
        (repo / "mlops.yaml")
        .read_text()
        .replace("  # identities:\n  #   train:", "  identities:\n    train:")
        .replace('  #     identity: "https', '      identity: "https', 1)
    )
    (repo / "mlops.yaml").write_text(keyless)
    assert findings(repo, answers)["secret MLOPS_SIGNING_KEY"].status == "warn"  # keyless on GitHub
    assert bad["environment staging"].detail == "no such environment"
    assert bad["environment production"].detail == "protected in mlops.yaml, no reviewers"
    assert (
        bad["branch protection of main: required checks"].detail
        == "pr.yml's validate, policy, test not required"
    )
    stale = bad["branch protection of main: dismiss stale approvals when new commits are pushed"]
    assert stale.status == "missing" and "dismiss stale approvals" in stale.fix
    gpu = bad["gpu runner [self-hosted, linux, gpu]"]
    assert gpu.status == "missing" and gpu.fix.startswith(
        "RUNNER_ROLE=gpu scripts/runners/register-runner.sh"
    )
    assert bad["deploy runner [self-hosted, deploy]"].status == "ok"

    del answers["branches/main/protection"]
    unprotected = findings(repo, answers)["branch protection of main"]
    assert unprotected.status == "missing" and "404" in unprotected.detail


def test_doctor_without_github_says_so_and_checks_the_rest(tmp_path: Path) -> None:
    """No gh token here: GitHub's part is one finding with its fix; the registry (none yet) and
    the DVC remote (the embedded local one) are said too; exit code 1 (something is missing)."""
    repo = sandbox(tmp_path / "repo")
    done = run_mlops(
        "doctor", "--repository", REPOSITORY, "-o", "json", cwd=repo, env_extra={"PATH": "/usr/bin:/bin"}
    )
    assert done.returncode == 1, done.stderr
    found = {f["check"]: f for f in json.loads(done.stdout)["findings"]}
    assert found[REPOSITORY]["status"] == "missing" and "gh" in found[REPOSITORY]["detail"]
    registry = next(f for f in found.values() if f["area"] == "registry")
    assert registry["status"] == "missing" and registry["detail"] == "no registry here"
    key = found["key team (keys/team.pub)"]  # never made here: nothing it would sign verifies
    assert (key["status"], key["fix"]) == ("missing", "mlops keys init; commit it")
    remote = found["DVC remote local"]
    assert remote["status"] == "warn" and remote["fix"] == "dvc remote add -d team s3://bucket/dvc"


@pytest.mark.parametrize("url", ["https://github.com/acme/models.git", "git@github.com:acme/models.git"])
def test_the_repository_is_the_origin_s(tmp_path: Path, url: str) -> None:
    from mlops_gitops.deploy.doctor import repository_of

    repo = sandbox(tmp_path / "repo")
    import subprocess

    subprocess.run(["git", "remote", "add", "origin", url], cwd=repo, check=True)
    assert repository_of(repo, None) == REPOSITORY
