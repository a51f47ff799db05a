"""Target `kserve`: rendered InferenceService manifests validated against KServe's own CRD
schema (tests/fixtures/kserve, with attribution), and the directory mode Argo CD or Flux
syncs, driven by the real reconciler over a real registry. No Kubernetes cluster can run
here: the kubectl mode is exercised through a stand-in `kubectl` on PATH that records its
arguments and answers like kubectl would."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from mlops_gitops.targets import Desired
from mlops_gitops.targets.kserve import render

from ..conftest import git_commit_all, run_mlops
from .conftest import FIXTURES
from .test_reconcile import set_manifest

SCHEMA = json.loads((FIXTURES / "kserve/kserve-inferenceservice-v1beta1.schema.json").read_text())


def valid(document: dict[str, Any]) -> None:
    jsonschema.validate(document, SCHEMA)
    assert document["apiVersion"] == "serving.kserve.io/v1beta1" and document["kind"] == "InferenceService"


@pytest.mark.parametrize(
    "desired",
    [
        Desired(
            "churn",
            "staging",
            "environments/staging/churn.yaml",
            1,
            resources={"cpu": "1", "memory": "1Gi", "gpu": 0},
        ),
        Desired(
            "churn",
            "production",
            "environments/production/churn.yaml",
            1,
            traffic=((1, 90), (2, 10)),
            replicas=3,
            resources={"cpu": "500m", "memory": "2Gi", "gpu": 1},
        ),
        Desired("churn", "staging", "environments/staging/churn.yaml", 2, shadow=1, replicas=0),
    ],
    ids=["plain", "canary-gpu", "shadow"],
)
def test_rendered_manifests_are_valid_inference_services(desired: Desired) -> None:
    uris = {1: "s3://models/churn/1", 2: "s3://models/churn/2"}
    document = render(desired, "models", uris, "abc123", {1: "a" * 64, 2: "b" * 64})
    valid(document)
    predictor = document["spec"]["predictor"]
    assert document["metadata"]["name"] == f"churn-{desired.environment}"
    assert predictor["model"]["modelFormat"] == {"name": "mlflow"}
    assert predictor["minReplicas"] == desired.replicas
    if desired.traffic:
        assert predictor["canaryTrafficPercent"] == 10
        assert predictor["model"]["storageUri"] == uris[2]  # the new revision takes the canary share
        assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    else:
        assert "canaryTrafficPercent" not in predictor
        assert predictor["model"]["storageUri"] == uris[desired.version or 0]
    if desired.shadow:
        assert document["metadata"]["annotations"]["mlops-gitops.dev/shadow-ignored"] == "1"


def _kserve_repo(registered: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(registered, repo, symlinks=True)
    project = repo / "mlops.yaml"
    project.write_text(project.read_text().replace("  target: local", "  target: kserve"))
    for env in ("staging", "production"):
        manifest = repo / f"environments/{env}/churn.yaml"
        manifest.write_text(manifest.read_text().replace("kind: local", "kind: kserve"))
    git_commit_all(repo, "deploy through KServe")
    return repo


@pytest.mark.slow
def test_reconcile_renders_for_argo_cd_and_a_second_run_changes_nothing(
    registered: Path, tmp_path: Path
) -> None:
    repo = _kserve_repo(registered, tmp_path)
    set_manifest(
        repo,
        "staging",
        "v1 to staging",
        version=1,
        traffic=[{"version": 1, "percent": 80}, {"version": 2, "percent": 20}],
    )
    first = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert first.returncode == 0, first.stdout + first.stderr
    rendered = repo / "deploy/kserve/staging/churn.yaml"
    document = yaml.safe_load(rendered.read_text())
    valid(document)
    assert document["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert document["spec"]["predictor"]["model"]["storageUri"].startswith("file://")  # the registry's URI
    assert len(document["metadata"]["annotations"]["mlops-gitops.dev/artifact-sha256"]) == 64
    before = rendered.read_bytes()
    again = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert [r["result"] for r in json.loads(again.stdout)["results"]] == ["unchanged"]
    assert rendered.read_bytes() == before
    plan = json.loads(run_mlops("plan", "--env", "staging", "-o", "json", cwd=repo).stdout)["changes"][0]
    assert (plan["sync"], plan["health"]) == ("Synced", "unknown")  # health is the cluster's (Argo CD)


@pytest.mark.slow
def test_kubectl_mode_applies_and_waits(registered: Path, tmp_path: Path) -> None:
    repo = _kserve_repo(registered, tmp_path)
    project = repo / "mlops.yaml"
    project.write_text(project.read_text().replace('kube_context: ""', "kube_context: kind-test"))
    git_commit_all(repo, "a cluster")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "kubectl.calls"
    (bin_dir / "kubectl").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'case "$3" in\n'
        "  apply) cat > /dev/null; echo applied;;\n"
        "  wait) echo condition met;;\n"
        '  get) echo \'{"status": {"conditions": [{"type": "Ready", "status": "True"}]}}\';;\n'
        "esac\n"
    )
    (bin_dir / "kubectl").chmod(0o755)
    set_manifest(repo, "staging", "v1 to staging", version=1)
    proc = run_mlops(
        "reconcile",
        "--env",
        "staging",
        cwd=repo,
        env_extra={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = calls.read_text().splitlines()
    assert lines[0].startswith("--context kind-test apply -f -")
    assert any(
        line.startswith(
            "--context kind-test wait --for=condition=Ready inferenceservice/churn-staging -n models"
        )
        for line in lines
    )


@pytest.mark.slow
def test_a_revision_that_never_gets_ready_is_rolled_back_by_reapplying(
    registered: Path, tmp_path: Path
) -> None:
    """The rollback after a switch: the stand-in cluster accepts v2's manifest but never makes
    it Ready, so the reconciler applies v1's again, keeps @staging on v1 and exits 1."""
    repo = _kserve_repo(registered, tmp_path)
    project = repo / "mlops.yaml"
    project.write_text(project.read_text().replace('kube_context: ""', "kube_context: kind-test"))
    git_commit_all(repo, "a cluster")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    applied = tmp_path / "applied.yaml"
    (bin_dir / "kubectl").write_text(
        "#!/bin/sh\n"
        'case "$3" in\n'
        f"  apply) cat > {applied}; echo applied;;\n"
        f"  wait) if grep -q \"version: '2'\" {applied}; then echo 'timed out' >&2; exit 1; fi;"
        " echo condition met;;\n"
        '  get) echo \'{"status": {"conditions": [{"type": "Ready", "status": "True"}]}}\';;\n'
        "esac\n"
    )
    (bin_dir / "kubectl").chmod(0o755)
    path = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    set_manifest(repo, "staging", "v1 to staging", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo, env_extra=path).returncode == 0
    set_manifest(repo, "staging", "v2 to staging", version=2)
    proc = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo, env_extra=path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert (result["result"], result["reason"], result["version"], result["previous"]) == (
        "rolled-back",
        "HealthCheckFailed",
        1,
        2,
    )
    assert "not Ready: timed out" in result["message"]
    for document in (
        yaml.safe_load(applied.read_text()),
        yaml.safe_load((repo / "deploy/kserve/staging/churn.yaml").read_text()),
    ):
        assert document["metadata"]["annotations"]["mlops-gitops.dev/version"] == "1"  # v1 applied again
    from mlflow import MlflowClient

    assert MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_registered_model("churn").aliases == {
        "staging": 1
    }
