"""Train with the real DVC pipeline, register in real MLflow (sqlite file and `mlflow server`),
and compare champion and challenger. Nothing here is faked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import base_env, git_commit_all, run_mlops
from .mlflow_server import free_port, mlflow_server
from .workflows import BIN, sandbox

pytestmark = pytest.mark.slow

LINEAGE_TAGS = {
    "mlops.git.commit",
    "mlops.git.branch",
    "mlops.git.dirty",
    "mlops.dvc.lock_sha256",
    "mlops.data",
    "mlops.params",
    "mlops.metrics",
    "mlops.device",
    "mlops.device_name",
    "mlops.learner",
    "mlops.runner.name",
    "mlops.runner.labels",
    "mlops.python",
    "mlops.packages",
    "mlops.fingerprint",
    "mlops.artifact_sha256",
    "mlops.signature",
}


def env_for(repo: Path, **extra: str) -> dict[str, str]:
    env = {**base_env(), "PYTHONPATH": str(repo / "scripts"), **extra}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return env


def dvc_repro(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dvc"), "repro", "pipelines/dvc.yaml"],
        cwd=repo,
        env=env_for(repo),
        capture_output=True,
        text=True,
        timeout=600,
    )


def first_model(repo: Path) -> str:
    return sorted(yaml.safe_load((repo / "pipelines/params.yaml").read_text())["models"])[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of this repository with the pipeline run once (kept for the module)."""
    repo = sandbox(tmp_path_factory.mktemp("trained") / "repo")
    proc = dvc_repro(repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield repo


@pytest.fixture
def repo(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the trained repository (its own registry file)."""
    dest = tmp_path / "repo"
    shutil.copytree(trained, dest, symlinks=True)
    return dest


def client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(uri)


def test_repro_is_reproducible_and_a_second_run_does_nothing(repo: Path) -> None:
    model = first_model(repo)
    lock = (repo / "pipelines/dvc.lock").read_text()
    metrics = json.loads((repo / f"pipelines/out/{model}/metrics.json").read_text())
    assert metrics["roc_auc"] > 0.75
    # model.yaml names a sensitive feature: fairlearn's gaps are DVC metrics like the others
    for name in ("demographic_parity_difference", "equalized_odds_difference"):
        assert 0 <= metrics[f"fairness.age.{name}"] < 0.2
    again = dvc_repro(repo)
    assert again.returncode == 0
    assert "Data and pipelines are up to date." in again.stdout
    assert "Running stage" not in again.stdout
    assert (repo / "pipelines/dvc.lock").read_text() == lock
    info = json.loads((repo / f"pipelines/out/{model}/train_info.json").read_text())
    assert info["device"] == "cpu" and info["learner"] == "hist_gradient_boosting"  # no GPU on this machine


def test_a_param_change_reruns_only_what_depends_on_it(repo: Path) -> None:
    model = first_model(repo)
    params = yaml.safe_load((repo / "pipelines/params.yaml").read_text())
    params["models"][model]["train"]["max_iter"] = 50
    (repo / "pipelines/params.yaml").write_text(yaml.safe_dump(params))
    proc = dvc_repro(repo)
    assert proc.returncode == 0, proc.stderr
    assert f"Running stage 'pipelines/dvc.yaml:train@{model}'" in proc.stdout
    assert f"Running stage 'pipelines/dvc.yaml:ingest@{model}'" not in proc.stdout


def _register(repo: Path, **env: str) -> dict[str, Any]:
    proc = run_mlops("register", "--output", "json", cwd=repo, env_extra=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _check_version(uri: str, model: str, version: int, repo: Path) -> None:
    import mlflow
    from mlops_gitops.registry.lineage import sha256_file, sha256_tree

    mv = client(uri).get_model_version(model, str(version))
    assert set(mv.tags) >= LINEAGE_TAGS, LINEAGE_TAGS - set(mv.tags)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    assert mv.tags["mlops.git.commit"] == commit
    assert mv.tags["mlops.dvc.lock_sha256"] == sha256_file(repo / "pipelines/dvc.lock")
    data = json.loads(mv.tags["mlops.data"])
    assert f"pipelines/data/{model}/raw.csv" in data and f"pipelines/data/{model}/test.csv" in data
    assert json.loads(mv.tags["mlops.metrics"]) == json.loads(
        (repo / f"pipelines/out/{model}/metrics.json").read_text()
    )
    assert mv.tags["mlops.device"] == "cpu"
    assert "mlflow" in json.loads(mv.tags["mlops.packages"])
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: put back as it was, or every later test
    # in this process would talk to this (stopped) server
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(repo / "download"))
    finally:
        mlflow.set_tracking_uri(before)  # None: unset, the variable too
    assert sha256_tree(Path(local)) == mv.tags["mlops.artifact_sha256"]
    mlmodel = yaml.safe_load((Path(local) / "MLmodel").read_text())
    assert "signature" in mlmodel and "inputs" in mlmodel["signature"]
    assert (Path(local) / "input_example.json").is_file()
    assert not any("stage" in key.lower() for key in mv.tags)  # aliases and tags, never stages


def test_uncommitted_pipeline_files_make_the_lineage_dirty(repo: Path) -> None:
    """dvc repro wrote pipelines/dvc.lock, which git does not track yet: the version's commit
    cannot reproduce it, and the lineage says so (and register warns)."""
    model = first_model(repo)
    assert (
        "pipelines/dvc.lock"
        in subprocess.run(
            ["git", "ls-files", "--others", "--exclude-standard"], cwd=repo, capture_output=True, text=True
        ).stdout
    )
    proc = run_mlops("register", "--output", "json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    uri = json.loads(proc.stdout)["registry"]
    tags = client(uri).get_model_version(model, "1").tags
    assert tags["mlops.git.dirty"] == "true"
    assert "pipelines/dvc.lock" in json.loads(tags["mlops.git.untracked"])
    assert f"warning: {model} is registered from uncommitted work (pipelines/dvc.lock)" in proc.stderr


def test_register_in_the_sqlite_default_is_idempotent(repo: Path) -> None:
    model = first_model(repo)
    git_commit_all(repo, "Train: dvc.lock")  # what dvc asks to commit: the lineage is clean then
    first = _register(repo, MLOPS_RUNNER_LABELS='["self-hosted", "linux", "gpu"]')
    assert [(v["model"], v["version"], v["result"]) for v in first["versions"]] == [(model, 1, "registered")]
    uri = first["registry"]
    assert uri == f"sqlite:///{repo.resolve() / 'mlflow.db'}"
    _check_version(uri, model, 1, repo)
    tags = client(uri).get_model_version(model, "1").tags
    assert tags["mlops.git.dirty"] == "false" and "mlops.git.untracked" not in tags
    assert (
        client(uri).get_model_version(model, "1").tags["mlops.runner.labels"]
        == '["self-hosted", "linux", "gpu"]'
    )
    assert first["versions"][0]["signed_by"] is None  # no key here yet: registered unsigned, and said
    assert "mlops.signing.bundle" not in tags
    keys = run_mlops("keys", "init", "-o", "json", cwd=repo)
    assert keys.returncode == 0, keys.stderr
    again = _register(repo)  # a re-run converges: the same version, now signed (as if killed before)
    assert [(v["version"], v["result"]) for v in again["versions"]] == [(1, "unchanged")]
    assert again["versions"][0]["signed_by"] == json.loads(keys.stdout)["fingerprint"]
    assert len(client(uri).search_model_versions(f"name = '{model}'")) == 1
    verified = run_mlops("verify", model, "--version", "1", "-o", "json", cwd=repo)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    provenance = next(c for c in json.loads(verified.stdout)["checks"] if c["check"] == "provenance")
    commit = tags["mlops.git.commit"]
    assert f"from commit {commit[:12]}" in provenance["detail"]  # the lineage's commit, signed
    assert (repo / "mlruns").is_dir()  # artifacts beside the sqlite file, both git-ignored
    ignored = subprocess.run(
        ["git", "check-ignore", "mlflow.db", "mlruns"], cwd=repo, capture_output=True, text=True
    )
    assert ignored.stdout.split() == ["mlflow.db", "mlruns"]


def test_register_against_a_real_mlflow_server(repo: Path, tmp_path: Path) -> None:
    model = first_model(repo)
    assert run_mlops("keys", "init", cwd=repo).returncode == 0
    with mlflow_server(tmp_path / "server") as url:
        result = _register(repo, MLFLOW_TRACKING_URI=url)
        assert result["registry"] == url
        assert [(v["version"], v["result"]) for v in result["versions"]] == [(1, "registered")]
        assert str(result["versions"][0]["signed_by"]).startswith("sha256:")  # bundles through the server
        checked = run_mlops(
            "verify", model, "--version", "1", cwd=repo, env_extra={"MLFLOW_TRACKING_URI": url}
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        _check_version(url, model, 1, repo)
        assert [
            (v["version"], v["result"]) for v in _register(repo, MLFLOW_TRACKING_URI=url)["versions"]
        ] == [(1, "unchanged")]
    assert not (repo / "mlflow.db").exists()


def test_unreachable_registry_is_one_line_and_exit_2(repo: Path) -> None:
    proc = run_mlops(
        "register", cwd=repo, env_extra={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: registry http://127.0.0.1:")
    assert "Traceback" not in proc.stderr


def test_register_without_pipeline_output_says_what_to_run(tmp_path: Path) -> None:
    repo = sandbox(tmp_path / "fresh")
    proc = run_mlops("register", cwd=repo)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "error: no trained model found under pipelines/out/ (expected `make train` to have run)"
    )
    proc = run_mlops("register", "ghost", cwd=repo)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: model 'ghost': not defined")


def test_champion_challenger_report(repo: Path) -> None:
    model = first_model(repo)
    uri = _register(repo)["registry"]
    # v1 alone: no baseline exists yet, so it is judged against the thresholds
    proc = run_mlops(
        "report", model, "--candidate", "1", "--baseline", "production", "--output", "json", cwd=repo
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = json.loads(proc.stdout)
    assert first["passed"] is True and first["baseline"] is None
    assert "no version of" in first["note"]
    out = Path(first["directory"])
    for png in ("roc.png", "pr.png", "confusion.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert "judged against the thresholds alone" in (out / "report.md").read_text()
    client(uri).set_registered_model_alias(model, "production", "1")

    # a weaker challenger: fewer boosting rounds, registered as v2, must lose against production
    params = yaml.safe_load((repo / "pipelines/params.yaml").read_text())
    params["models"][model]["train"].update(max_iter=3, learning_rate=0.01)
    (repo / "pipelines/params.yaml").write_text(yaml.safe_dump(params))
    assert dvc_repro(repo).returncode == 0
    assert [v["version"] for v in _register(repo)["versions"]] == [2]
    proc = run_mlops("report", model, "--candidate", "2", "--baseline", "production", cwd=repo)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (
        f"### Champion/challenger: `{model}` v2 against baseline v1 (`@production`): ❌ **failed**"
        in proc.stdout
    )
    assert "| roc_auc | no drop under baseline" in proc.stdout and "**FAIL**" in proc.stdout
    tags = client(uri).get_model_version(model, "2").tags
    assert tags["mlops.report.passed"] == "false" and tags["mlops.report.baseline"] == "1"
    assert client(uri).get_model_version(model, "1").tags["mlops.report.passed"] == "true"


def test_register_report_flag_fails_the_job_on_a_failing_report(repo: Path) -> None:
    model = first_model(repo)
    definition = repo / f"models/{model}/model.yaml"
    definition.write_text(definition.read_text().replace("roc_auc: {min: 0.75}", "roc_auc: {min: 0.99}"))
    summary = repo / "summary.md"
    proc = run_mlops("register", "--report", cwd=repo, env_extra={"GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 1
    assert f"champion/challenger report failed for {model} v1" in proc.stderr
    assert "| roc_auc | >= 0.99 | **FAIL** |" in summary.read_text()


def test_a_key_the_trust_policy_does_not_list_is_said_at_registration(repo: Path) -> None:
    """Signed all the same (the key is the one CI was given), but said: no environment takes it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    proc = run_mlops("register", cwd=repo, env_extra={"MLOPS_SIGNING_KEY": pem.decode()})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = " ".join(proc.stderr.split())
    assert "which mlops.yaml's signing does not list: no environment takes it" in said, proc.stderr
    assert "PRIVATE KEY" not in proc.stdout + proc.stderr  # the key itself is never printed
