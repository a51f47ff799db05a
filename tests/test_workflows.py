"""The workflows: actionlint, least privilege, and a real run of pr.yml under act."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import FIXTURES, ROOT, run_mlops
from .workflows import BIN, run_act, sandbox

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def test_actionlint_passes_on_every_workflow() -> None:
    proc = subprocess.run(
        [str(BIN / "actionlint"), *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_declares_permissions_and_pins_actions(workflow: Path) -> None:
    doc = yaml.safe_load(workflow.read_text())
    assert "permissions" in doc, f"{workflow.name}: no top-level permissions"
    for job_id, job in doc["jobs"].items():
        for step in job.get("steps", []):
            uses = step.get("uses", "")
            if uses and not uses.startswith("./"):
                assert SHA_PINNED.match(uses), (
                    f"{workflow.name}: {job_id}: {uses} is not pinned by commit SHA"
                )


@pytest.mark.act
def test_pr_workflow_runs_every_job_under_act(tmp_path: Path) -> None:
    repo = sandbox(tmp_path / "repo")
    results, log = run_act(
        repo, "pull_request", ".github/workflows/pr.yml", FIXTURES / "events" / "pull_request.json"
    )
    assert results == {"lint": "success", "validate": "success", "test": "success"}, log
    assert "all valid; " in log  # mlops validate really ran
    assert re.search(r"\d+ passed", log)  # and so did the test suite


@pytest.mark.act
def test_pr_workflow_fails_on_an_invalid_manifest(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sandbox(repo)
    path = repo / "environments/staging" / next((repo / "environments/staging").glob("*.yaml")).name
    path.write_text(path.read_text().replace("version: null", "version: latest"))
    assert run_mlops("validate", cwd=repo).returncode == 1
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "bad"],
        cwd=repo,
        check=True,
    )
    results, log = run_act(
        repo,
        "pull_request",
        ".github/workflows/pr.yml",
        FIXTURES / "events" / "pull_request.json",
        "-j",
        "validate",
    )
    assert results["validate"] == "failure", log
    assert 'version: got string "latest"' in log
