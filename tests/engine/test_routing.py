"""Routing through the local target: a canary split and a shadow answered as the manifest says,
and a file of rows sent as clients send them, landing in the deployment's log."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
import yaml

from ..conftest import run_mlops
from .helpers import aliases, example, http, served_repo, set_manifest, url_of

__all__ = ["served_repo"]  # the fixture `repo`: a copy of the registered repository

pytestmark = pytest.mark.slow


def test_canary_split_and_shadow(repo: Path) -> None:
    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    set_manifest(
        repo,
        "staging",
        "canary v2 at 30%, shadow v2",
        traffic=[{"version": 1, "percent": 70}, {"version": 2, "percent": 30}],
        shadow={"version": 2},
    )
    proc = run_mlops("reconcile", "--env", "staging", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    url, rows = url_of(repo), example(repo)
    seen = [
        http("POST", f"{url}/predict", {"dataframe_records": rows[:1]}, headers={"X-Request-Id": f"r{i}"})[1][
            "version"
        ]
        for i in range(200)
    ]
    assert set(seen) == {1, 2} and 20 <= seen.count(2) <= 100  # 30% of 200 = 60, binomial bounds
    time.sleep(0.5)
    log = [
        json.loads(line) for line in (repo / ".mlops/inference/staging/churn.jsonl").read_text().splitlines()
    ]
    shadows = {e["request_id"]: e for e in log if e["role"] == "shadow"}
    primaries = {e["request_id"]: e for e in log if e["role"] == "primary"}
    assert {f"r{i}" for i in range(200)} <= set(shadows) and all(
        shadows[f"r{i}"]["version"] == 2 for i in range(200)
    )
    assert all(primaries[f"r{i}"]["version"] == seen[i] for i in range(200))  # answers came from the primary
    assert aliases(repo) == {"staging": 1}  # the alias follows `version`, the stable one

    # rolling the canary back puts the routing as it was before it: v1 alone, no split, no shadow
    rolled = run_mlops("rollback", "churn", "--env", "staging", "--direct", "--no-pr", "-o", "json", cwd=repo)
    assert rolled.returncode == 0, rolled.stderr
    manifest = yaml.safe_load((repo / "environments/staging/churn.yaml").read_text())
    assert (manifest["version"], manifest.get("traffic"), manifest.get("shadow")) == (1, None, None)
    assert json.loads(rolled.stdout)["to_version"] == 1


def test_traffic_from_a_file_reaches_the_deployment_and_its_log(repo: Path, tmp_path: Path) -> None:
    """`mlops predict`: rows from a CSV in batches, each a request with its id, only the model's
    inputs sent; the answers and the labels (the target column) written by request id; the URL
    from `mlops status --url`."""
    from .registered import features

    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    url = run_mlops("status", "churn", "--env", "staging", "--url", cwd=repo)
    assert url.returncode == 0 and url.stdout.strip() == url_of(repo)
    X, y = features(rows=230, seed=5)
    X.assign(churned=y, customer_id=[f"c{i}" for i in range(230)]).to_csv(tmp_path / "rows.csv", index=False)
    answers, labels = tmp_path / "answers.csv", tmp_path / "labels.csv"
    proc = run_mlops(
        "predict",
        "churn",
        "--env",
        "staging",
        "--input",
        str(tmp_path / "rows.csv"),
        "--batch-size",
        "100",
        "--out",
        str(answers),
        "--labels-out",
        str(labels),
        "-o",
        "json",
        cwd=repo,
    )
    assert proc.returncode == 0, proc.stderr
    sent = json.loads(proc.stdout)
    assert (sent["rows"], sent["requests"], sent["failed"], sent["versions"]) == (230, 3, {}, {"1": 230})
    log = [
        json.loads(line) for line in (repo / ".mlops/inference/staging/churn.jsonl").read_text().splitlines()
    ]
    ids = {e["request_id"] for e in log if e["role"] == "primary" and len(e["inputs"]) in (100, 30)}
    written = list(csv.DictReader(answers.open()))
    assert len(written) == 230 and {r["request_id"] for r in written} == ids
    assert all("churned" not in e["inputs"][0] and "customer_id" not in e["inputs"][0] for e in log)
    truth = list(csv.DictReader(labels.open()))
    assert [int(r["label"]) for r in truth] == y.tolist()
    feedback = run_mlops(
        "feedback", "churn", "--env", "staging", "--labels", str(labels), "-o", "json", cwd=repo
    )
    assert feedback.returncode in (0, 1) and json.loads(feedback.stdout)["joined"] == 230

    (tmp_path / "bad.csv").write_text("tenure_months,age\n1,2\n")
    bad = run_mlops("predict", "churn", "--env", "staging", "--input", str(tmp_path / "bad.csv"), cwd=repo)
    assert bad.returncode == 2 and "rows: no column 'contract' in every row" in bad.stderr
    down = run_mlops("status", "churn", "--env", "production", "--url", cwd=repo)
    assert down.returncode == 2 and "churn in production: not running" in down.stderr
