"""The workflows: actionlint, least privilege, and a real run of pr.yml under act."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT, run_mlops
from .conftest import EVENTS
from .workflows import run_act, sandbox

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


@pytest.mark.act
def test_pr_workflow_runs_every_job_under_act(tmp_path: Path) -> None:
    """Every job of pr.yml runs, each finding the tool set through the setup action with nothing
    exported (the shared environment of `make tools-path`). A session that runs the generated
    repository's life leaves this out: that life runs pr.yml whole and asserts all of this."""
    repo = sandbox(tmp_path / "repo")
    # Inside act the test job runs pytest on the repository's content tests: the whole pr.yml,
    # every test of a generated repository, runs in tests/template/test_life.py.
    results, log = run_act(
        repo,
        "pull_request",
        ".github/workflows/pr.yml",
        EVENTS / "pull_request.json",
        env={"PYTEST_ARGS": "-m 'not slow' tests/test_repository.py"},
    )
    assert results == {"lint": "success", "validate": "success", "policy": "success", "test": "success"}, log
    assert log.count("Install the tool set (once per constraints.txt), or reuse it") >= 4
    assert re.search(r"policy tests: \d+, 0 failed; coverage [\d.]+% \(at least 90", log)  # the gate ran them
    assert "no environment manifest changed: no promotion to judge" in log
    assert "all valid; " in log  # mlops validate really ran
    assert re.search(r"\d+ passed", log) and "test_repository.py" in log  # and so did pytest


@pytest.mark.act
@pytest.mark.slow
def test_pr_workflow_gates_a_promotion_and_shows_a_policy_changes_impact(
    registered: Path, tmp_path: Path
) -> None:
    """pr.yml's policy job under act, on a pull request that promotes churn v2 to staging and
    adds a policy: the gate judges the promotion (facts from the registry, set as the
    repository variable), and the comment's body lists what the new policy would deny among
    what main deploys (v1 in staging, whose recorded AUC is below the new floor)."""
    import shutil

    from mlflow import MlflowClient

    from ..conftest import git_commit_all
    from .registered import FAIRNESS

    repo = tmp_path / "repo"
    shutil.copytree(registered, repo, symlinks=True)
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    metrics = json.dumps({"roc_auc": 0.78, "f1": 0.55, **FAIRNESS})
    MlflowClient(uri).set_model_version_tag("churn", "1", "mlops.metrics", metrics)
    staging = repo / "environments/staging/churn.yaml"
    staging.write_text(staging.read_text().replace("version: null", "version: 1"))
    git_commit_all(repo, "churn v1 in staging")
    subprocess.run(["git", "checkout", "--quiet", "-b", "promote/churn-staging-v2"], cwd=repo, check=True)
    staging.write_text(staging.read_text().replace("version: 1", "version: 2"))
    (repo / "policies/promotion/floor.rego").write_text(
        "package promotion\n\nimport rego.v1\n\n"
        "deny_auc_floor contains msg if {\n"
        "\tinput.version.metrics.roc_auc < 0.8\n"
        '\tmsg := sprintf("%s v%d: roc_auc %v is below the floor of 0.8", '
        "[input.change.model, input.version.number, input.version.metrics.roc_auc])\n}\n"
    )
    git_commit_all(repo, "Promote churn v2 to staging; an AUC floor")
    # github.repository comes from the remote: the event's head repository, so not a fork
    subprocess.run(
        ["git", "remote", "add", "origin", "https://github.com/acme/models.git"], cwd=repo, check=True
    )
    results, log = run_act(
        repo,
        "pull_request",
        ".github/workflows/pr.yml",
        EVENTS / "pull_request.json",
        "-j",
        "policy",
        "--var",
        f"MLFLOW_TRACKING_URI={uri}",
    )
    assert results["policy"] == "success", log
    assert re.search(r"### Policy gate: (✅ \*\*allowed\*\*|⚠️ \*\*allowed with warnings\*\*)", log), log
    assert "`environments/staging/churn.yaml`" in log  # the gate judged the changed manifest
    assert "### Policy change impact: ⚠️ **1 newly denied**" in log, log
    assert "| newly denied | churn v1 in staging | `environments/staging/churn.yaml` |" in log
    assert "roc_auc 0.78 is below the floor of 0.8" in log
    # the decision is kept with v2 in the registry, where `mlops evidence` finds it
    assert re.search(r"decision recorded: churn v2 staging: (allow|warn)", log), log
    run_id = MlflowClient(uri).get_model_version("churn", "2").run_id
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout
    kept = [a.path for a in MlflowClient(uri).list_artifacts(run_id, "mlops/decisions/staging")]
    # (the registered fixture's artifact store is shared: other tests' decisions may be there)
    assert any(path.endswith(f"-{head.strip()[:12]}.json") for path in kept), kept


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
        EVENTS / "pull_request.json",
        "-j",
        "validate",
    )
    assert results["validate"] == "failure", log
    assert 'version: got string "latest"' in log


@pytest.mark.act
def test_train_workflow_runs_on_the_gpu_labels_and_registers(tmp_path: Path) -> None:
    """train.yml under act: the config job reads the GPU labels from mlops.yaml, the train job
    runs on them (mapped to this host: there is no GPU runner here), trains, registers, reports."""
    from mlflow import MlflowClient

    repo = sandbox(tmp_path / "repo")
    labels = yaml.safe_load((repo / "mlops.yaml").read_text())["runners"]["gpu"]
    # act removes its working copy after the job: the registry lives outside it, set the way a
    # team sets it on GitHub (the repository variable MLFLOW_TRACKING_URI).
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    results, log = run_act(
        repo,
        "workflow_dispatch",
        ".github/workflows/train.yml",
        EVENTS / "workflow_dispatch.json",
        "--var",
        f"MLFLOW_TRACKING_URI={uri}",
    )
    assert results == {"config": "success", "train": "success"}, log
    assert "Running stage 'pipelines/dvc.yaml:train@" in log
    assert "✅ **passed**" in log  # the report went to the job summary
    assert f"registry {uri}" in log
    client = MlflowClient(uri)
    (version,) = client.search_model_versions("")
    assert json.loads(version.tags["mlops.runner.labels"]) == labels
    assert version.tags["mlops.report.passed"] == "true"
    # the passing version got its promotion to staging (no gh here: the next step is printed)
    assert f"promotion of {version.name} v1: branch promote/{version.name}-staging-v1" in log


@pytest.mark.act
@pytest.mark.slow
def test_reconcile_workflow_deploys_each_environment(registered: Path, tmp_path: Path) -> None:
    """reconcile.yml under act: the config job lists the environments, one reconcile job per
    environment (matrix) plans, reconciles and reports status, and production's builds and
    verifies its evidence pack. The registry and the state directory live outside act's
    working copy, set as repository variables would set them."""
    import re
    import shutil
    import urllib.request

    from ..conftest import git_commit_all, run_mlops
    from .mlflow_server import free_port

    repo = tmp_path / "repo"
    shutil.copytree(registered, repo, symlinks=True)
    project = repo / "mlops.yaml"
    project.write_text(re.sub(r"base_port: \d+", f"base_port: {free_port()}", project.read_text()))
    for env in ("staging", "production"):
        manifest = repo / f"environments/{env}/churn.yaml"
        manifest.write_text(manifest.read_text().replace("version: null", "version: 2"))
    git_commit_all(repo, "Promote churn v2 to staging and production")
    state = tmp_path / "state"
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    try:
        results, log = run_act(
            repo,
            "workflow_dispatch",
            ".github/workflows/reconcile.yml",
            EVENTS / "workflow_dispatch.json",
            "--var",
            f"MLFLOW_TRACKING_URI={uri}",
            "--var",
            f"MLOPS_STATE_DIR={state}",
        )
        assert results["config"] == "success", log
        assert results["reconcile"] == "success", log
        # one matrix job per environment (act reports both under the job id "reconcile")
        assert "mlops status --env staging" in log and "mlops status --env production" in log, log
        # production's job ends with its evidence pack, verified (staging's builds none)
        # where `mlops paths` says: under MLOPS_STATE_DIR, which outlives the job's checkout
        assert "evidence/production/churn-v2.zip (churn v2 in production" in log, log
        assert "evidence/production/churn-v2.zip: intact" in log, log
        assert (state / "evidence/production/churn-v2.zip").is_file() and not (
            state / "evidence/staging"
        ).exists()
        (record,) = [
            json.loads(line) for line in (state / "records/staging/churn.jsonl").read_text().splitlines()
        ]
        assert (record["result"], record["version"]) == ("healthy", 2)
        assert record["by"].startswith("github:")  # the workflow's actor
        server = json.loads((state / "servers/staging/churn.json").read_text())
        with urllib.request.urlopen(
            f"http://{server['host']}:{server['port']}/health", timeout=5
        ) as response:
            assert json.loads(response.read())["versions"] == [2]  # still serving after the job
    finally:
        run_mlops("down", cwd=repo, env_extra={"MLOPS_STATE_DIR": str(state)})
