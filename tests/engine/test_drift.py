"""Drift and feedback: a real MLflow registry (the serving version's lineage points at its
training data by md5), inference logs in the model server's own line format, evidently."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import ROOT, base_env, git_commit_all, run_mlops

pytestmark = pytest.mark.slow

sys.path.insert(0, str(ROOT / "pipelines" / "stages"))


def log_lines(
    rows: int, seed: int, shift: float, version: int = 1, batch: int = 1, answered_by: Path | None = None
) -> tuple[list[str], Any]:
    """Inference-log lines (inference_log's format) for `rows` customers, `batch` per request;
    and the frame they came from (with its churned column, the ground truth). The answers are
    registered v1's own (`answered_by`: the repository whose registry holds it), else 0.5 each."""
    from churn_data import make_customers
    from mlops_gitops.core.inference_log import entry as log_entry

    frame = make_customers(rows, seed, shift)
    features = frame.drop(columns=["customer_id", "churned"])
    answers = [[0.5, 0.5]] * rows
    if answered_by is not None:
        import mlflow

        uri = f"sqlite:///{answered_by / 'mlflow.db'}"
        source = mlflow.MlflowClient(uri).get_model_version("churn", "1").source
        answers = mlflow.pyfunc.load_model(source).predict(features).tolist()
    lines = []
    spec = {"model": "churn", "environment": "staging"}
    for start in range(0, rows, batch):
        chunk = features.iloc[start : start + batch].to_dict(orient="records")
        outputs = answers[start : start + len(chunk)]
        entry = log_entry(spec, f"r{seed}-{start}", version, "primary", chunk, outputs, 0.001)
        lines.append(json.dumps(entry.to_dict()))
    return lines, frame


@pytest.fixture
def serving(registered: Path, tmp_path: Path) -> Path:
    """churn v1 serving in staging; its lineage names a real training file (workspace copy)."""
    from churn_data import make_customers
    from mlflow import MlflowClient
    from mlops_gitops.monitor.drift import md5_file

    repo = tmp_path / "repo"
    shutil.copytree(registered, repo, symlinks=True)
    train = repo / "pipelines/data/churn/train.csv"
    train.parent.mkdir(parents=True, exist_ok=True)
    make_customers(1500, 7).drop(columns=["customer_id"]).to_csv(train, index=False)
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    client.set_model_version_tag(
        "churn", "1", "mlops.data", json.dumps({"pipelines/data/churn/train.csv": md5_file(train)})
    )
    client.set_registered_model_alias("churn", "staging", "1")
    manifest = repo / "environments/staging/churn.yaml"
    manifest.write_text(re.sub(r"^version: .*$", "version: 1", manifest.read_text(), flags=re.M))
    git_commit_all(repo, "v1 in staging")
    return repo


def write_log(repo: Path, lines: list[str]) -> Path:
    from mlops_gitops.core.state import inference_log

    path = inference_log(repo, "staging", "churn")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def model_tags(repo: Path) -> dict[str, str]:
    from mlflow import MlflowClient

    return dict(MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_registered_model("churn").tags)


def test_a_shifted_stream_is_detected_and_the_shifted_columns_named(serving: Path) -> None:
    lines, _ = log_lines(400, seed=11, shift=0.9, batch=4, answered_by=serving)
    write_log(serving, [*lines[:50], "{not json", '{"request_id": "cut short', *lines[50:]])
    proc = run_mlops("drift", "--env", "staging", "-o", "json", "--summary-file", "drift.md", cwd=serving)
    assert proc.returncode == 1, proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert (result["status"], result["severity"], result["version"]) == ("drift", "critical", 1)
    assert (result["rows"], result["skipped_lines"]) == (400, 2)  # corrupt lines skipped and counted
    drifted = set(result["drifted_columns"])
    assert {"monthly_charges", "tenure_months", "support_calls", "contract"} <= drifted, result["columns"]
    assert not drifted & {"age", "payment_method", "internet_service"}  # unshifted in the generator
    methods = {c["column"]: (c["kind"], c["method"]) for c in result["columns"]}
    assert methods["monthly_charges"] == ("numerical", "psi") and methods["contract"] == (
        "categorical",
        "jensenshannon",
    )
    assert result["reference"] == "pipelines/data/churn/train.csv" and result["reference_rows"] == 1500

    html = (serving / result["report_html"]).read_text()
    assert "<html" in html.lower() and not re.search(r"<script[^>]+src=\"https?:", html)  # self-contained
    # named and headed by model, environment and version
    assert re.fullmatch(r"drift-churn-staging-v1-\d{8}T\d{6}Z\.html", Path(result["report_html"]).name)
    assert Path(result["report_json"]).name == Path(result["report_html"]).with_suffix(".json").name
    assert "<title>Drift: churn v1 in staging</title>" in html
    assert re.search(
        r"<body[^>]*><header[^>]*><h1[^>]*>Drift: churn v1 in staging</h1><p[^>]*>drift \(critical\)", html
    )
    report = json.loads((serving / result["report_json"]).read_text())
    assert report["result"]["drifted_columns"] == result["drifted_columns"] and report["evidently"]["tests"]
    summary = (serving / "drift.md").read_text()
    assert "**churn** v1 in **staging**: ⚠️ **drift** (critical)" in summary
    assert "| monthly_charges | numerical | psi | 0.2 |" in summary

    tags = model_tags(serving)
    assert (
        tags["mlops.drift.staging.status"] == "drift" and tags["mlops.drift.staging.severity"] == "critical"
    )
    assert result["prediction"]["drifted"]  # the shifted customers churn more: the scores moved too
    assert set(tags["mlops.drift.staging.columns"].split(",")) == drifted | {"prediction"}
    from mlops_gitops.core.tags import drift_of

    facts = drift_of(tags, "staging")  # what the promotion gate reads
    assert (facts["status"], facts["severity"], set(facts["columns"])) == (
        "drift",
        "critical",
        drifted | {"prediction"},
    )
    from mlops_gitops.core.records import RecordLog

    (history,) = RecordLog(serving).entries("staging", "churn", "drift")  # the deployment's one log
    assert history["status"] == "drift" and history["report_html"] == result["report_html"]


def test_an_unshifted_stream_is_not_drift(serving: Path) -> None:
    from mlops_gitops.core.config import load_repo
    from mlops_gitops.monitor.drift import run
    from mlops_gitops.registry.client import Registry

    lines, _ = log_lines(400, seed=11, shift=0.0, answered_by=serving)
    shadow = json.loads(lines[0]) | {"role": "shadow", "inputs": [{"age": 999}]}
    failed = json.loads(lines[0]) | {"error": "boom", "inputs": [{"age": -5}]}
    write_log(serving, [*lines, json.dumps(shadow), json.dumps(failed)])
    repo = load_repo(serving)
    result = run(repo, Registry(repo), "churn", "staging")
    assert (result.status, result.severity, result.drifted, result.rows) == ("no-drift", None, [], 400)
    assert len(result.columns) == 9 and result.skipped_lines == 0
    # the model's answers, judged beside the features: v1's scores on the training rows
    assert result.prediction is not None and result.prediction.kind == "numerical"
    assert not result.prediction.drifted and result.prediction_note == ""


def test_too_little_data_says_so(serving: Path) -> None:
    lines, _ = log_lines(60, seed=11, shift=0.9)
    write_log(serving, lines)
    proc = run_mlops("drift", "churn", "--env", "staging", cwd=serving)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "insufficient-data" in proc.stdout and "60 rows logged (min 200)" in proc.stdout
    assert model_tags(serving)["mlops.drift.staging.status"] == "insufficient-data"
    # a window that leaves out everything logged is not enough data either, and a bad window is one line
    assert (
        run_mlops("drift", "--env", "staging", "--since", "2000-01-01T00:00:00Z", cwd=serving).returncode == 3
    )
    bad = run_mlops("drift", "--env", "staging", "--since", "yesterday", cwd=serving)
    assert bad.returncode == 2 and "--since 'yesterday': not a window" in bad.stderr


def test_feedback_tracks_live_performance_and_flags_concept_drift(serving: Path, tmp_path: Path) -> None:
    """Predictions logged with real scores (the registered v1's own predict_proba); labels
    that agree with the world the model learned, then labels of a world that has changed."""
    lines, frame = log_lines(300, seed=21, shift=0.0, answered_by=serving)
    write_log(serving, lines)
    entries = [json.loads(line) for line in lines]
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "request_id,label\n"
        + "".join(f"{e['request_id']},{y}\n" for e, y in zip(entries, frame["churned"], strict=True))
    )
    good = run_mlops(
        "feedback", "churn", "--env", "staging", "--labels", str(labels), "-o", "json", cwd=serving
    )
    assert good.returncode == 0, good.stderr
    result = healthy = json.loads(good.stdout)
    (v1,) = result["versions"]
    assert result["status"] == "ok" and result["joined"] == 300 and v1["live"] > 0.75 and not v1["degraded"]
    # the labels judged as drift judges a column: the world's churn rate is the training data's
    assert (result["target"]["column"], result["target"]["kind"], result["target"]["drifted"]) == (
        "target",
        "categorical",
        False,
    )

    flipped = tmp_path / "flipped.jsonl"  # the relationship inverted: what was churn no longer is
    flipped.write_text(
        "".join(
            json.dumps({"request_id": e["request_id"], "label": 1 - int(y)}) + "\n"
            for e, y in zip(entries, frame["churned"], strict=True)
        )
        + json.dumps({"request_id": "never-logged", "label": 1})
        + "\n"
    )
    bad = run_mlops(
        "feedback", "churn", "--env", "staging", "--labels", str(flipped), "-o", "json", cwd=serving
    )
    assert bad.returncode == 1, bad.stderr
    result = json.loads(bad.stdout)
    assert result["status"] == "degraded" and result["unmatched"] == 1
    assert result["target"]["drifted"]  # churn is now the common answer: the labels moved (prior shift)
    assert result["versions"][0]["drop"] > result["max_drop"]
    assert model_tags(serving)["mlops.performance.staging.status"] == "degraded"
    page = serving / healthy["report_html"]
    assert re.fullmatch(r"feedback-churn-staging-v1-\d{8}T\d{9}Z\.html", page.name)  # to the millisecond
    text = page.read_text()
    assert (
        "<title>Live roc_auc: churn v1 in staging</title>" in text and 'src="data:image/png;base64,' in text
    )
    assert json.loads((serving / healthy["report_json"]).read_text())["status"] == "ok"
    from mlops_gitops.core.records import RecordLog

    history = RecordLog(serving).entries("staging", "churn", "feedback")
    assert [h["status"] for h in history] == ["ok", "degraded"]  # the trend over time

    broken = tmp_path / "broken.csv"
    broken.write_text("request_id,label\nr1,maybe\n")
    proc = run_mlops("feedback", "churn", "--env", "staging", "--labels", str(broken), cwd=serving)
    assert proc.returncode == 2 and "record 1" in proc.stderr and "numeric label" in proc.stderr


def test_alert_without_github_changes_nothing_and_says_what_it_would_do(
    serving: Path, tmp_path: Path
) -> None:
    body = tmp_path / "body.md"
    body.write_text("### Drift\n")
    proc = run_mlops(
        "alert",
        "--name",
        "drift-staging",
        "--title",
        "Drift in staging",
        "--body-file",
        str(body),
        "--repository",
        "acme/models",
        "--dispatch",
        "train.yml",
        "--input",
        "models=churn",
        cwd=tmp_path,
        env_extra={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},  # no gh on PATH
    )
    assert proc.returncode == 0, proc.stderr
    assert "would open or update the issue 'Drift in staging'" in proc.stdout
    assert "gh workflow run train.yml --ref main" in proc.stdout


@pytest.mark.act
def test_drift_workflow_detects_drift_and_raises_the_alert_under_act(serving: Path, tmp_path: Path) -> None:
    """drift.yml under act: one job per environment; staging's shifted log is drift, so the
    alert step runs (no GitHub here: it prints the issue and the dispatch it would make)."""
    from mlops_gitops.monitor.drift import md5_file

    from .conftest import EVENTS
    from .workflows import run_act

    # act checks out what git tracks: the training data comes from the team's DVC remote, here
    # a directory outside the checkout, as DVC stores it (files/md5/<2>/<30>)
    train = serving / "pipelines/data/churn/train.csv"
    md5 = md5_file(train)
    remote = tmp_path / "dvc-remote"
    (remote / "files/md5" / md5[:2]).mkdir(parents=True)
    shutil.copy(train, remote / "files/md5" / md5[:2] / md5[2:])
    config = serving / ".dvc/config"
    config.write_text(re.sub(r"url = .*", f"url = {remote}", config.read_text()))
    git_commit_all(serving, "the team's DVC remote")
    state = tmp_path / "state"
    lines, _ = log_lines(400, seed=11, shift=0.9, batch=4)
    log = state / "inference/staging/churn.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("".join(line + "\n" for line in lines))
    results, output = run_act(
        serving,
        "workflow_dispatch",
        ".github/workflows/drift.yml",
        EVENTS / "workflow_dispatch.json",
        "--var",
        f"MLFLOW_TRACKING_URI=sqlite:///{serving / 'mlflow.db'}",
        "--var",
        f"MLOPS_STATE_DIR={state}",
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},  # no gh: nothing reaches GitHub
    )
    assert results == {"config": "success", "drift": "success"}, output
    assert "Matrix: map[environment:staging]" in output and "Matrix: map[environment:production]" in output
    assert "churn v1 in staging: drift (critical)" in output
    assert "would open or update the issue 'Drift in staging' (drift-staging) on" in output
    assert "dispatch train.yml on main with {'models': 'churn'}" in output
    assert "Drift in production" not in output  # nothing deployed there, no alert
    assert model_tags(serving)["mlops.drift.staging.status"] == "drift"
    # the reports where `mlops paths` says (what the job uploads), beside nothing else
    assert [p.suffix for p in sorted((state / "drift/staging/churn").iterdir())] == [".html", ".json"]
    assert sorted(p.name for p in (state / "drift/staging").iterdir()) == ["churn"]


def test_a_fresh_clone_fetches_the_reference_from_the_dvc_remote(registered: Path, tmp_path: Path) -> None:
    """A runner with no workspace data and no DVC cache (a fresh clone) gets the serving
    version's training data from the project's DVC remote, here an HTTP one (DVC's own http
    remote, a real server), through dvc.api.open at the lineage's commit, checked by md5."""
    import subprocess

    from mlflow import MlflowClient

    from . import peers
    from .mlflow_server import free_port

    repo = tmp_path / "repo"
    shutil.copytree(registered, repo, symlinks=True)
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def dvc(*args: str, cwd: Path = repo) -> None:
        command = [str(Path(sys.executable).parent / "dvc"), *args]
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**base_env(), **env})
        assert proc.returncode == 0, proc.stdout + proc.stderr

    dvc("repro", "pipelines/dvc.yaml:prepare@churn")
    remote, port = tmp_path / "remote", free_port()
    dvc("remote", "add", "--local", "store", str(remote))
    dvc("push", "-r", "store", "pipelines/dvc.yaml:prepare@churn")
    dvc("remote", "add", "--force", "-d", "web", f"http://127.0.0.1:{port}")
    manifest = repo / "environments/staging/churn.yaml"
    manifest.write_text(re.sub(r"^version: .*$", "version: 1", manifest.read_text(), flags=re.M))
    git_commit_all(repo, "prepared data pushed; the team's remote; v1 in staging")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    lock = yaml.safe_load((repo / "pipelines/dvc.lock").read_text())
    outs = lock["stages"]["prepare@churn"]["outs"]
    md5 = next(o["md5"] for o in outs if o["path"] == "data/churn/train.csv")
    registry = f"sqlite:///{repo / 'mlflow.db'}"
    client = MlflowClient(registry)
    client.set_model_version_tag(
        "churn", "1", "mlops.data", json.dumps({"pipelines/data/churn/train.csv": md5})
    )
    client.set_model_version_tag("churn", "1", "mlops.git.commit", commit)
    client.set_registered_model_alias("churn", "staging", "1")

    clone = tmp_path / "runner" / "repo"
    subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
    assert not (clone / "pipelines/data").exists() and not (clone / ".dvc/cache").exists()
    state = tmp_path / "runner" / "state"
    lines, _ = log_lines(400, seed=11, shift=0.9, batch=4)
    log = state / "inference/staging/churn.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("".join(line + "\n" for line in lines))
    run_env = {"MLFLOW_TRACKING_URI": registry, "MLOPS_STATE_DIR": str(state), **env}
    server = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(remote),
    ]
    with peers.serving(server, f"http://127.0.0.1:{port}/", tmp_path / "http" / "log"):
        proc = run_mlops("drift", "--env", "staging", "-o", "json", cwd=clone, env_extra=run_env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert result["status"] == "drift" and result["reference"].endswith(f"references/{md5}.csv")
    from mlops_gitops.monitor.drift import md5_file

    assert md5_file(state / "references" / f"{md5}.csv") == md5
    again = run_mlops("drift", "--env", "staging", "-o", "json", cwd=clone, env_extra=run_env)
    assert again.returncode == 1, again.stderr  # the server is gone: the checked copy is reused

    client.set_model_version_tag(
        "churn", "1", "mlops.data", json.dumps({"pipelines/data/churn/train.csv": "0" * 32})
    )
    with peers.serving(server, f"http://127.0.0.1:{port}/", tmp_path / "http" / "log2"):
        wrong = run_mlops("drift", "--env", "staging", cwd=clone, env_extra=run_env)
    assert wrong.returncode == 2
    assert f"the DVC remote's copy has md5 {md5}, not {'0' * 32}" in wrong.stderr


def test_a_log_over_sample_rows_is_read_whole_and_judged_on_a_sample(serving: Path) -> None:
    """drift.sample_rows caps the rows judged (evidently's advice for large data); every row is
    still read and counted, and a clear shift is found in the sample as in the whole."""
    from mlops_gitops.core.config import load_repo
    from mlops_gitops.monitor.drift import run
    from mlops_gitops.registry.client import Registry

    lines, _ = log_lines(3000, seed=11, shift=0.9, batch=3)
    write_log(serving, lines)
    repo = load_repo(serving)
    whole = run(repo, Registry(repo), "churn", "staging")
    definition = serving / "models/churn/model.yaml"
    definition.write_text(
        definition.read_text().replace("  min_rows: 200", "  min_rows: 200\n  sample_rows: 1000")
    )
    repo = load_repo(serving)
    sampled = run(repo, Registry(repo), "churn", "staging")
    assert (whole.rows, whole.sampled_rows, whole.reference_rows) == (3000, 3000, 1500)
    assert (sampled.rows, sampled.sampled_rows, sampled.reference_rows) == (3000, 1000, 1500)
    assert sampled.status == whole.status == "drift"
    assert {"monthly_charges", "tenure_months"} <= set(sampled.drifted) & set(whole.drifted)
