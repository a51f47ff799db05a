"""Target `kserve`: rendered InferenceService manifests validated against KServe's own CRD
schema (tests/fixtures/kserve, with attribution), and the directory mode Argo CD or Flux
syncs, driven by the real reconciler over a real registry. No Kubernetes cluster can run
here: the kubectl mode is exercised through a stand-in `kubectl` on PATH that records its
arguments and answers like kubectl would."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from mlops_gitops.deploy.targets import Desired
from mlops_gitops.deploy.targets.kserve import render

from ..conftest import git_commit_all, run_mlops
from .conftest import FIXTURES
from .helpers import set_manifest

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
    """The registered repository deploying through KServe, its model store a directory."""
    repo = tmp_path / "repo"
    shutil.copytree(registered, repo, symlinks=True)
    project = repo / "mlops.yaml"
    text = project.read_text().replace("  target: local", "  target: kserve")
    text = text.replace('    model_store: ""', f"    model_store: {tmp_path / 'model-store'}")
    project.write_text(text)
    for env in ("staging", "production"):
        manifest = repo / f"environments/{env}/churn.yaml"
        manifest.write_text(manifest.read_text().replace("kind: local", "kind: kserve"))
    git_commit_all(repo, "deploy through KServe")
    return repo


@pytest.mark.slow
def test_rendered_for_argo_cd_health_unknown_is_never_called_healthy(
    registered: Path, tmp_path: Path
) -> None:
    """Directory mode with no health source: the file is rendered (and stays byte for byte the
    same on every run), the artifact is in the model store under its sha256, but nobody saw it
    Ready: the result is progressing, status says unknown, the alias does not move and no
    healthy record starts the soak clock."""
    repo = _kserve_repo(registered, tmp_path)
    project = repo / "mlops.yaml"
    project.write_text(project.read_text().replace("from: argocd", "from: none"))
    git_commit_all(repo, "no health source")
    set_manifest(
        repo,
        "staging",
        "v1 to staging",
        version=1,
        traffic=[{"version": 1, "percent": 80}, {"version": 2, "percent": 20}],
    )
    first = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert first.returncode == 0, first.stdout + first.stderr
    (result,) = json.loads(first.stdout)["results"]
    assert (result["result"], result["version"]) == ("progressing", 1)
    assert "no health source" in result["message"]
    rendered = repo / "deploy/kserve/staging/churn.yaml"
    document = yaml.safe_load(rendered.read_text())
    valid(document)
    assert document["spec"]["predictor"]["canaryTrafficPercent"] == 20
    sha = document["metadata"]["annotations"]["mlops-gitops.dev/artifact-sha256"]
    uri = document["spec"]["predictor"]["model"]["storageUri"]
    assert uri == (tmp_path / "model-store" / "sha256" / sha).as_uri()  # v2, the canary, in the store
    from mlops_gitops.registry.lineage import sha256_tree

    assert sha256_tree(tmp_path / "model-store" / "sha256" / sha) == sha
    assert len(list((tmp_path / "model-store" / "sha256").iterdir())) == 2  # v1 and v2 published
    before = rendered.read_bytes()
    again = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert [(r["action"], r["result"]) for r in json.loads(again.stdout)["results"]] == [
        ("await", "progressing")
    ]
    assert rendered.read_bytes() == before
    plan = json.loads(run_mlops("plan", "--env", "staging", "-o", "json", cwd=repo).stdout)["changes"][0]
    assert (plan["sync"], plan["health"], plan["action"]) == ("Synced", "unknown", "await")
    status = json.loads(run_mlops("status", "--env", "staging", "-o", "json", cwd=repo).stdout)
    (row,) = status["deployments"]
    assert (row["health"], row["since"]) == ("unknown", None)
    from mlflow import MlflowClient

    assert MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_registered_model("churn").aliases == {}
    records = [
        json.loads(line) for line in (repo / ".mlops/records/staging/churn.jsonl").read_text().splitlines()
    ]
    assert [r["result"] for r in records] == ["progressing"]  # once, not once per run


def kubectl_stand_in(
    tmp_path: Path, apply: str, wait: str = "echo condition met", first: str = ":"
) -> dict[str, str]:
    """A `kubectl` on PATH that answers like kubectl: `first` runs on every call, `apply` and
    `wait` run the given shell lines, `get` says Ready. The environment to run `mlops` with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "kubectl").write_text(
        f"#!/bin/sh\n{first}\n"
        'case "$3" in\n'
        f"  apply) {apply};;\n"
        f"  wait) {wait};;\n"
        '  get) echo \'{"status": {"conditions": [{"type": "Ready", "status": "True"}]}}\';;\n'
        "esac\n"
    )
    (bin_dir / "kubectl").chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.slow
def test_kubectl_mode_applies_and_waits(registered: Path, tmp_path: Path) -> None:
    repo = _kserve_repo(registered, tmp_path)
    project = repo / "mlops.yaml"
    project.write_text(project.read_text().replace('kube_context: ""', "kube_context: kind-test"))
    git_commit_all(repo, "a cluster")
    calls, applied = tmp_path / "kubectl.calls", tmp_path / "applied.yaml"
    path = kubectl_stand_in(tmp_path, f"cat > {applied}; echo applied", first=f'echo "$*" >> {calls}')
    set_manifest(repo, "staging", "v1 to staging", version=1)
    token = "s3cret/token+with=odd"
    proc = run_mlops(
        "reconcile", "--env", "staging", cwd=repo, env_extra={**path, "MLOPS_COLLECT_TOKEN": token}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = calls.read_text().splitlines()
    assert lines[0].startswith("--context kind-test apply -f -")
    # what kubectl applied gives KServe's logger the collector's token (user info: Go's client
    # sends it as HTTP Basic); the rendered file, which may be committed or hydrated, never holds it
    logger = yaml.safe_load(applied.read_text())["spec"]["predictor"]["logger"]["url"]
    assert logger == "http://logger:s3cret%2Ftoken%2Bwith%3Dodd@mlops-collect.models.svc.cluster.local"
    rendered = (repo / "deploy/kserve/staging/churn.yaml").read_text()
    assert "s3cret" not in rendered and "mlops-collect.models.svc.cluster.local" in rendered
    assert "s3cret" not in proc.stdout + proc.stderr
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
    applied = tmp_path / "applied.yaml"
    never_ready = (
        f"if grep -q \"version: '2'\" {applied}; then echo 'timed out' >&2; exit 1; fi; echo condition met"
    )
    path = kubectl_stand_in(tmp_path, f"cat > {applied}; echo applied", wait=never_ready)
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


# A stand-in for the `argocd` CLI (see the module docstring): `app manifests APP --source live`
# prints what the "cluster" runs (the file the test put there, as Argo CD prints live objects)
# and `app get APP -o json` an Application whose status.resources lists the InferenceService
# with the sync status and health the test set.
ARGOCD = """#!{python}
import json, pathlib, sys
state = json.loads(pathlib.Path({state!r}).read_text())
live = pathlib.Path({live!r})
args = sys.argv[1:]
if args[:2] == ["app", "manifests"]:
    print(live.read_text() if live.exists() else "")
elif args[:2] == ["app", "get"]:
    resource = {{"group": "serving.kserve.io", "kind": "InferenceService", "namespace": "models",
                "name": "churn-staging", "status": state["sync"],
                "health": {{"status": state["health"], "message": state.get("message", "")}}}}
    print(json.dumps({{"metadata": {{"name": args[2]}},
                      "status": {{"resources": [resource] if live.exists() else []}}}}))
else:
    sys.exit("argocd stand-in: unexpected " + " ".join(args))
"""


def _argocd_repo(registered: Path, tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    repo = _kserve_repo(registered, tmp_path)
    bin_dir, cluster = tmp_path / "bin", tmp_path / "cluster"
    bin_dir.mkdir()
    cluster.mkdir()
    (bin_dir / "argocd").write_text(
        ARGOCD.format(
            python=sys.executable, state=str(cluster / "state.json"), live=str(cluster / "live.yaml")
        )
    )
    (bin_dir / "argocd").chmod(0o755)
    return repo, cluster, {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def _cluster(cluster: Path, health: str, sync: str = "Synced", applied: Path | None = None) -> None:
    (cluster / "state.json").write_text(json.dumps({"health": health, "sync": sync, "message": "stand-in"}))
    if applied is not None:  # Argo CD synced the rendered file
        shutil.copy(applied, cluster / "live.yaml")


def _reconcile(repo: Path, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    proc = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo, env_extra=env)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    return proc.returncode, result


def _records(repo: Path) -> list[dict[str, Any]]:
    path = repo / ".mlops/records/staging/churn.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _aliases(repo: Path) -> dict[str, int]:
    from mlflow import MlflowClient

    return dict(MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_registered_model("churn").aliases)


@pytest.mark.slow
def test_health_is_read_from_argo_cd_and_a_version_never_ready_gets_its_revert_proposed(
    registered: Path, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    repo, cluster, env = _argocd_repo(registered, tmp_path)
    rendered = repo / "deploy/kserve/staging/churn.yaml"
    set_manifest(repo, "staging", "v1 to staging", version=1)
    _cluster(cluster, "Missing")
    code, result = _reconcile(repo, env)  # rendered; not in the cluster yet
    assert (code, result["result"]) == (0, "progressing")
    assert "no InferenceService churn-staging in the cluster yet" in result["message"]
    _cluster(cluster, "Progressing", applied=rendered)  # Argo CD synced it; pods are starting
    code, result = _reconcile(repo, env)
    assert (code, result["action"], result["result"]) == (0, "await", "progressing")
    assert _aliases(repo) == {}  # nothing moves on health not seen
    _cluster(cluster, "Healthy")
    code, result = _reconcile(repo, env)
    assert (code, result["result"], result["version"]) == (0, "healthy", 1)
    assert _aliases(repo) == {"staging": 1}
    assert [r["result"] for r in _records(repo)] == ["progressing", "healthy"]
    assert _records(repo)[-1]["reason"] == "seen healthy: Argo CD app churn-staging: Healthy: stand-in"

    # v2: rendered, but the cluster still runs v1 (healthy): v2 is not judged by v1's health
    set_manifest(repo, "staging", "v2 to staging", version=2)
    code, result = _reconcile(repo, env)
    assert (code, result["result"]) == (0, "progressing")
    assert "the cluster runs version 1 (expected 2" in result["message"]
    _cluster(cluster, "Progressing", applied=rendered)  # synced; it never gets Ready
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    code, result = _reconcile(repo, {**env, "MLOPS_NOW": later})
    assert (code, result["result"], result["reason"]) == (1, "failed", "NotReady")
    assert "ready_timeout 600 s" in result["message"] and "revert proposed" in result["message"]
    branch = "rollback/churn-staging-v1"
    from mlops_gitops.core.gitinfo import git

    proposed = yaml.safe_load(git(repo, "show", f"{branch}:environments/staging/churn.yaml"))
    assert proposed["version"] == 1  # the revert, for review: only git changes what Argo CD runs
    assert yaml.safe_load((repo / "environments/staging/churn.yaml").read_text())["version"] == 2
    assert _aliases(repo) == {"staging": 1}
    code, again = _reconcile(repo, {**env, "MLOPS_NOW": later})  # re-run: converges, no duplicate
    assert (code, again["result"]) == (1, "failed") and f"(branch {branch})" in again["message"]
    assert not git(repo, "branch", "--list", f"{branch}-*")  # the open proposal, not another one
    results = [r["result"] for r in _records(repo)]
    assert results == ["progressing", "healthy", "progressing", "failed"]
    assert "NotReady" in _records(repo)[-1]["reason"]

    _cluster(cluster, "Degraded", applied=rendered)
    code, degraded = _reconcile(repo, env)  # degraded fails at once, without waiting out the timeout
    assert (code, degraded["result"]) == (1, "failed") and "degraded" in degraded["message"]


@pytest.mark.slow
def test_a_model_the_pinned_runtime_cannot_load_is_refused_naming_both_versions(
    registered: Path, tmp_path: Path
) -> None:
    import mlflow

    repo = _kserve_repo(registered, tmp_path)
    project = repo / "mlops.yaml"
    project.write_text(project.read_text().replace('mlflow: "3.17"', 'mlflow: "2.22"'))
    git_commit_all(repo, "an older runtime")
    set_manifest(repo, "staging", "v1 to staging", version=1)
    proc = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert (result["result"], result["reason"]) == ("failed", "RuntimeMismatch")
    assert f"saved with MLflow {mlflow.__version__}; the runtime loads with MLflow 2.22" in result["message"]
    assert "kserve-mlserver:1.7.1" in result["message"]
    assert not (repo / "deploy/kserve/staging/churn.yaml").exists()  # nothing rendered
    assert not (tmp_path / "model-store").exists()  # nothing published


@pytest.mark.slow
def test_hydrate_publishes_the_rendered_files_on_their_own_branch(registered: Path, tmp_path: Path) -> None:
    """Directory mode's output reaches git for Argo CD: `mlops hydrate --push` commits each
    rendered environment's folder onto rendered-manifests (never main, working tree untouched),
    keeps the environments it did not render, and converges on re-runs."""
    import subprocess

    from mlops_gitops.core.gitinfo import git

    repo = _kserve_repo(registered, tmp_path)
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(origin)], check=True)
    git(repo, "remote", "add", "origin", str(origin))
    set_manifest(repo, "staging", "v1 to staging", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    head, status = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")
    first = run_mlops("hydrate", "--push", "-o", "json", cwd=repo)
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout)
    assert (done["branch"], done["changed"], done["pushed"], done["environments"]) == (
        "rendered-manifests",
        True,
        True,
        ["staging"],
    )
    published = git(origin, "show", "rendered-manifests:staging/churn.yaml")
    assert published == (repo / "deploy/kserve/staging/churn.yaml").read_text().rstrip("\n")
    assert f"Source: {head}" in git(origin, "log", "-1", "--format=%B", "rendered-manifests")
    assert (git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")) == (head, status)
    again = json.loads(run_mlops("hydrate", "--push", "-o", "json", cwd=repo).stdout)
    assert (again["changed"], again["commit"]) == (False, done["commit"])  # converged

    set_manifest(repo, "production", "v1 to production", version=1)
    assert run_mlops("reconcile", "--env", "production", cwd=repo).returncode == 0
    shutil.rmtree(repo / "deploy/kserve/staging")  # another job's environment, not rendered here
    third = json.loads(run_mlops("hydrate", "--env", "production", "--push", "-o", "json", cwd=repo).stdout)
    assert third["changed"] and third["environments"] == ["production"]
    files = git(origin, "ls-tree", "-r", "--name-only", "rendered-manifests").split()
    assert files == ["production/churn.yaml", "staging/churn.yaml"]  # staging kept
    assert git(origin, "branch", "--list", "main") == ""  # main is never pushed

    # in CI the publishing job gets each environment's folder as an artifact: rendered-<env>/
    downloaded = tmp_path / "artifacts" / "rendered-staging"
    downloaded.mkdir(parents=True)
    (downloaded / "churn.yaml").write_text("kind: InferenceService  # re-rendered\n")
    fourth = json.loads(run_mlops("hydrate", "--from", str(downloaded.parent), "-o", "json", cwd=repo).stdout)
    assert fourth["changed"] and fourth["environments"] == ["staging"]
    assert "re-rendered" in git(repo, "show", "rendered-manifests:staging/churn.yaml")

    project = repo / "mlops.yaml"
    project.write_text(project.read_text().replace("output_dir: deploy/kserve", "output_dir: ../elsewhere"))
    outside = run_mlops("hydrate", cwd=repo)
    assert outside.returncode == 1  # configuration: refused by validation before any path is used
    assert "mlops.yaml: deploy.kserve.output_dir: ../elsewhere is outside the repository" in outside.stderr


@pytest.mark.slow
def test_an_analysed_rollout_on_kserve_moves_canary_traffic_percent(registered: Path, tmp_path: Path) -> None:
    """On kserve the rollout's steps are canaryTrafficPercent changes the reconciler applies;
    its checks read the inference log that `mlops collect` writes from KServe's logger (written
    here with collect's own writer: no cluster can send the events)."""
    from mlops_gitops.core import state
    from mlops_gitops.core.inference_log import Writer, entry

    repo = _kserve_repo(registered, tmp_path)
    project = repo / "mlops.yaml"
    project.write_text(project.read_text().replace('kube_context: ""', "kube_context: kind-test"))
    git_commit_all(repo, "a cluster")
    applied = tmp_path / "applied"
    applied.mkdir()
    env = kubectl_stand_in(tmp_path, f"cat > {applied}/$(ls {applied} | wc -l).yaml; echo applied")
    log = Writer(state.inference_log(repo, "staging", "churn"))

    def traffic(stable: int, canary: int) -> None:
        spec = {"model": "churn", "environment": "staging"}
        row = {"tenure_months": 3}
        for version, count in ((1, stable), (2, canary)):
            for i in range(count):
                log.write(
                    entry(
                        spec, f"v{version}-{i}-{time.time()}", version, "primary", [row], [[0.8, 0.2]], 0.004
                    )
                )

    def reconcile() -> dict[str, Any]:
        proc = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo, env_extra=env)
        return json.loads(proc.stdout)["results"][0]

    set_manifest(repo, "staging", "v1", version=1)
    assert reconcile()["result"] == "healthy"
    rollout = {
        "steps": [20, 50],
        "interval": 1,
        "threshold": 1,
        "checks": {"min_requests": 20, "max_class_shift": 0.15},
    }
    set_manifest(repo, "staging", "v2 under a rollout", version=2, rollout=rollout)
    results = [reconcile()["result"]]
    for stable, canary in ((80, 20), (50, 50)):
        traffic(stable, canary)
        time.sleep(1.1)
        results.append(reconcile()["result"])
    log.close()
    assert results == ["progressing", "progressing", "healthy"]
    documents = [
        yaml.safe_load((applied / f"{i}.yaml").read_text()) for i in range(len(list(applied.iterdir())))
    ]
    steps = [
        (
            d["metadata"]["annotations"]["mlops-gitops.dev/version"],
            d["spec"]["predictor"].get("canaryTrafficPercent"),
        )
        for d in documents
    ]
    assert steps == [("1", None), ("1", 20), ("1", 50), ("2", None)]
    assert (
        documents[1]["spec"]["predictor"]["model"]["storageUri"]
        == documents[3]["spec"]["predictor"]["model"]["storageUri"]
    )
    for document in documents:
        valid(document)
