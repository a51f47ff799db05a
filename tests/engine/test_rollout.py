"""The analysed canary on the local target, for real: model servers on loopback, traffic from a
real HTTP client, the reconciler run as the `mlops` command, verdicts read from the records.
A good version is promoted, one whose predictions shift and one that is slow are rolled back,
each by the analysis alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import run_mlops
from .helpers import aliases, http, records, set_manifest, url_of, v2_infer

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(canaried: Path, tmp_path: Path) -> Any:
    dest = tmp_path / "repo"
    shutil.copytree(canaried, dest, symlinks=True)
    yield dest
    run_mlops("down", cwd=dest)


def rows(count: int = 400) -> list[dict[str, Any]]:
    from .registered import features

    frame, _ = features(rows=count, seed=11)
    return json.loads(frame.to_json(orient="records"))


def send(url: str, batch: list[dict[str, Any]]) -> list[int]:
    """One request per row, as clients do; the versions that answered."""
    answered = []
    for row in batch:
        status, body = http("POST", f"{url}/predict", {"dataframe_records": [row]})
        assert status == 200, body
        answered.append(body["version"])
    return answered


def drive(repo: Path, rollout: dict[str, Any], version: int, rounds: int = 6) -> list[dict[str, Any]]:
    """Promote `version` under `rollout`, then alternate traffic and one reconcile until the
    rollout ends; each round's reconcile result (JSON)."""
    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    set_manifest(
        repo, "staging", f"promote v{version} under an analysed canary", version=version, rollout=rollout
    )
    results, batch = [], rows()
    for _ in range(rounds):
        proc = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
        result = json.loads(proc.stdout)["results"][0]
        results.append({**result, "exit": proc.returncode})
        if result["result"] != "progressing":
            break
        send(url_of(repo), batch[:300])
        time.sleep(rollout["interval"])
    return results


ROLLOUT = {"steps": [20, 50], "interval": 1, "threshold": 2}


def analyses(repo: Path) -> list[dict[str, Any]]:
    path = repo / ".mlops/records/staging/churn.jsonl"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e.get("kind") == "analysis"]


def test_a_good_canary_is_promoted_step_by_step(repo: Path) -> None:
    # v2 is a slightly other fit of v1 (PSI about 0.05 over 2,000 rows); a window of ~150 rows reads
    # higher (small samples bias PSI upward), so the limit leaves room: a shifted version reads > 2
    checks = {"min_requests": 30, "max_error_rate": 0.0, "max_class_shift": 0.15, "max_score_psi": 0.35}
    results = drive(repo, {**ROLLOUT, "checks": checks}, 2)
    assert [r["result"] for r in results] == ["progressing", "progressing", "healthy"], results
    assert results[-1]["exit"] == 0 and "promoted" in results[-1]["message"]
    verdicts = analyses(repo)
    assert [(a["weight"], a["verdict"], a["then"]) for a in verdicts] == [
        (20, "pass", "advance"),
        (50, "pass", "promote"),
    ]
    assert {c["name"] for c in verdicts[0]["checks"]} == set(checks)
    weights = [r["traffic"] for r in records(repo) if r.get("kind", "deployment") == "deployment"][1:]
    assert weights == [
        [{"version": 1, "percent": 80}, {"version": 2, "percent": 20}],
        [{"version": 1, "percent": 50}, {"version": 2, "percent": 50}],
        [{"version": 2, "percent": 100}],
    ]
    assert aliases(repo) == {"staging": 2}
    assert set(send(url_of(repo), rows(20))) == {2}
    again = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)  # converged: nothing to do
    assert json.loads(again.stdout)["results"][0]["result"] == "unchanged"
    status = json.loads(run_mlops("status", "--env", "staging", "-o", "json", cwd=repo).stdout)
    row = status["deployments"][0]
    assert row["serving"] == "v2" and row["metrics"][0]["version"] == "2"
    told = json.loads(run_mlops("history", "churn", "--env", "staging", "-o", "json", cwd=repo).stdout)
    stretches = told["stretches"]
    assert [(s["routing"], s["canary"]) for s in stretches] == [
        ([[1, 100]], None), ([[1, 80], [2, 20]], 2), ([[1, 50], [2, 50]], 2), ([[2, 100]], None),
    ]  # fmt: skip
    assert stretches[1]["why"]["subject"] == "promote v2 under an analysed canary"
    assert [e["verdict"] for e in stretches[1]["events"] if e.get("kind") == "analysis"] == ["pass"]


def test_a_canary_whose_predictions_shift_is_rolled_back(repo: Path) -> None:
    checks = {"min_requests": 30, "max_class_shift": 0.15, "max_score_psi": 0.2}
    results = drive(repo, {**ROLLOUT, "checks": checks}, 5)
    assert [r["result"] for r in results] == ["progressing", "progressing", "rolled-back"], results
    assert results[-1]["exit"] == 1 and results[-1]["reason"] == "AnalysisFailed"
    verdicts = analyses(repo)
    assert [(a["weight"], a["verdict"], a["then"]) for a in verdicts] == [
        (20, "fail", "hold"),
        (20, "fail", "rollback"),
    ]
    failed = {c["name"] for c in verdicts[-1]["checks"] if not c["passed"]}
    assert failed == {"max_class_shift", "max_score_psi"}
    last = records(repo)[-1]
    assert (last["result"], last["version"], last["previous"]) == ("rolled-back", 1, 5)
    assert last["reason"].startswith("AnalysisFailed: 2 failed analyses: max_class_shift")
    assert aliases(repo) == {"staging": 1} and set(send(url_of(repo), rows(20))) == {1}
    proposed = subprocess.run(
        ["git", "show", "rollback/churn-staging-v1:environments/staging/churn.yaml"],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert yaml.safe_load(proposed.stdout)["version"] == 1  # the revert of the promotion, proposed
    # the failure stands until the manifest changes: a re-run changes nothing and still says so
    again = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert again.returncode == 1 and json.loads(again.stdout)["results"][0]["reason"] == "AnalysisFailed"
    assert set(send(url_of(repo), rows(10))) == {1}
    # a new commit of the manifest is a new revision: a new rollout starts (Flagger's behaviour)
    set_manifest(
        repo, "staging", "retry v5 with looser checks", rollout={**ROLLOUT, "checks": {"min_requests": 30}}
    )
    retried = json.loads(run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo).stdout)[
        "results"
    ][0]
    assert retried["result"] == "progressing" and retried["message"].startswith("canary v5 started")


def test_a_slow_canary_is_rolled_back_on_latency(repo: Path) -> None:
    checks = {"min_requests": 15, "max_latency_p99_ms": 30}
    results = drive(repo, {**ROLLOUT, "threshold": 1, "checks": checks}, 6)
    assert [r["result"] for r in results] == ["progressing", "rolled-back"], results
    verdict = analyses(repo)[-1]
    latency = next(c for c in verdict["checks"] if c["name"] == "max_latency_p99_ms")
    assert not latency["passed"] and latency["value"] > 50
    assert [c["name"] for c in verdict["checks"] if not c["passed"]] == ["max_latency_p99_ms"]
    assert aliases(repo) == {"staging": 1}


def test_too_few_requests_are_not_judged(repo: Path) -> None:
    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    rollout = {**ROLLOUT, "checks": {"min_requests": 1000}}
    set_manifest(repo, "staging", "v2 canary", version=2, rollout=rollout)
    for _ in range(3):
        assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
        send(url_of(repo), rows(30))
        time.sleep(1)
    assert {a["verdict"] for a in analyses(repo)} == {"waiting"}
    assert json.loads((repo / ".mlops/rollouts/staging/churn.json").read_text())["failed"] == 0
    plan = json.loads(run_mlops("plan", "--env", "staging", "-o", "json", cwd=repo).stdout)
    assert plan["changes"][0]["action"] == "canary" and "at 20%" in plan["changes"][0]["detail"]


def test_a_client_pinning_the_canary_does_not_steer_its_verdict(repo: Path) -> None:
    """As Flagger and Argo Rollouts judge only what the router sent: requests a client pins to the
    canary (the v2 protocol's /versions/N/ route) are answered and logged apart, never judged. A
    flood of them at a canary whose predictions shift rolls nothing back while the split's own
    traffic is too thin to judge; the analysis records what it judged and the minimum."""
    from mlops_gitops.core import inference_log, state

    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    rollout = {**ROLLOUT, "threshold": 1, "checks": {"min_requests": 30, "max_class_shift": 0.15}}
    set_manifest(repo, "staging", "v5 under a rollout", version=5, rollout=rollout)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0  # canary at 20%
    url = url_of(repo)
    for row in rows(120):
        status, answer = http("POST", f"{url}/v2/models/churn/versions/5/infer", v2_infer(row, "pinned"))
        assert status == 200 and answer["model_version"] == "5", answer
    send(url, rows(10))
    time.sleep(ROLLOUT["interval"])
    proc = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert json.loads(proc.stdout)["results"][0]["result"] == "progressing", proc.stdout
    (judged,) = analyses(repo)
    assert judged["verdict"] == "waiting" and judged["then"] == "hold"
    assert judged["requests"]["canary"] < 30 and judged["requests"]["min_requests"] == 30
    assert judged["requests"]["canary"] + judged["requests"]["stable"] == 10
    assert not any(r.get("result") == "rolled-back" for r in records(repo))
    logged = [
        json.loads(line) for line in state.inference_log(repo, "staging", "churn").read_text().splitlines()
    ]
    assert sum(1 for e in logged if e["role"] == "pinned" and e["version"] == 5) == 120
    # every request came from this one client: the log says so, and so does what was judged
    assert {e["caller"] for e in logged} == {"127.0.0.1"}
    assert set(judged["requests"]["callers"].values()) <= {0, 1} and sum(
        judged["requests"]["callers"].values()
    )
    routed = inference_log.read(state.inference_log(repo, "staging", "churn")).entries
    assert routed and not any(e.request_id == "pinned" for e in routed)

    # the log rotated and replaced by one from before the rollout: none of it is judged
    log = state.inference_log(repo, "staging", "churn")
    log.write_text("")
    writer, hour_ago = inference_log.Writer(log), datetime.now(UTC) - timedelta(hours=1)
    spec = {"model": "churn", "environment": "staging"}
    for i, row in enumerate(rows(200)):
        old = inference_log.entry(spec, f"old-{i}", 5, "primary", [row], [[0.05, 0.95]], 0.004)
        writer.write(replace(old, at=inference_log.stamp(hour_ago)))
    writer.close()
    time.sleep(ROLLOUT["interval"])
    proc = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert json.loads(proc.stdout)["results"][0]["result"] == "progressing", proc.stdout
    assert [(a["verdict"], a["requests"]["canary"]) for a in analyses(repo)][-1] == ("waiting", 0)
    assert analyses(repo)[-1]["requests"]["callers"] is None  # nothing judged, no caller known
    assert not any(r.get("result") == "rolled-back" for r in records(repo))


def test_a_rollout_is_checked_when_the_manifest_is_read(repo: Path) -> None:
    bad = [
        ({"steps": [50, 20]}, "rollout.steps: [50, 20] (expected rising weights"),
        ({"steps": [10], "step_weight": 10, "max_weight": 50}, "rollout: steps and step_weight both set"),
        ({"interval": 5}, "rollout: no weights (expected steps, or step_weight and max_weight)"),
        ({"steps": [100]}, "rollout.steps[0]"),
    ]
    for rollout, said in bad:
        set_manifest(repo, "staging", "bad rollout", version=2, rollout=rollout)
        proc = run_mlops("validate", cwd=repo)
        assert proc.returncode == 1 and said in proc.stdout + proc.stderr, (
            rollout,
            proc.stdout + proc.stderr,
        )


def labelled_traffic(repo: Path, tmp_path: Path, split: list[dict[str, int]], rows_count: int = 600) -> Path:
    """A canary split deployed, then rows sent one per request by `mlops predict`, whose
    --labels-out keeps the ground truth; the labels file."""
    from churn_data import make_customers

    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    set_manifest(repo, "staging", "split", traffic=split)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    data, labels = tmp_path / "rows.csv", tmp_path / "labels.csv"
    make_customers(rows_count, 13, 0.0).drop(columns=["customer_id"]).to_csv(data, index=False)
    sent = run_mlops(
        "predict", "churn", "--env", "staging", "--input", str(data), "--batch-size", "1",
        "--labels-out", str(labels), cwd=repo,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    return labels


def test_compare_finds_a_worse_challenger_and_the_gate_reads_it(repo: Path, tmp_path: Path) -> None:
    from mlops_gitops.gate.facts import version_facts

    from .registered import registry_of

    labels = labelled_traffic(repo, tmp_path, [{"version": 1, "percent": 50}, {"version": 5, "percent": 50}])
    proc = run_mlops(
        "compare", "churn", "--env", "staging", "--labels", str(labels), "--record", "-o", "json", cwd=repo
    )
    assert proc.returncode == 1, proc.stderr  # worse
    result = json.loads(proc.stdout)
    assert (result["baseline"], result["challenger"], result["verdict"]) == (1, 5, "worse")
    measures = {m["measure"]: m for m in result["measures"]}
    auc = measures["roc_auc"]  # v5 scores every customer alike: no better than chance
    assert (
        auc["verdict"] == "worse"
        and auc["ci_high"] < 0
        and auc["ci_low"] < auc["difference"] < auc["ci_high"]
    )
    shares = measures["share_of_class_1"]
    assert shares["verdict"] == "differs" and shares["chi_square_p"] < 0.05
    assert shares["shares"]["1"]["challenger"] == 1.0
    assert measures["error_rate"]["verdict"] == "not enough data"  # no errors on either side
    (fact,) = version_facts(registry_of(repo), "churn", 5)[0]["compare"]
    assert (fact["environment"], fact["verdict"], fact["baseline"]) == ("staging", "worse", 1)
    assert "roc_auc" in fact["worse"]
    table = run_mlops("compare", "churn", "--env", "staging", "--labels", str(labels), cwd=repo)
    assert "95% interval" in table.stdout and "verdict: v5 is worse" in table.stderr


def close_call_log(repo: Path, tmp_path: Path, rows_count: int = 300) -> Path:
    """A canary split's log written as the server writes it (`inference_log.Writer`): two
    versions of the same quality (scores and latencies drawn alike, from a fixed seed), requests
    alternating between them; the labels file. Written, not served: a served split routes at
    random and its latencies follow the machine's load, so whether 150 requests a side decide
    anything would change from run to run; the served path is the test above's."""
    import numpy as np
    from mlops_gitops.core import inference_log, state

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, rows_count)
    scores = np.clip(0.5 + (labels - 0.5) * 0.3 + rng.normal(0, 0.25, rows_count), 0.01, 0.99)
    latency = rng.normal(4.0, 0.4, rows_count)
    log = inference_log.Writer(state.inference_log(repo, "staging", "churn"))
    spec = {"model": "churn", "environment": "staging"}
    for i in range(rows_count):
        outputs = [[round(1 - scores[i], 4), round(scores[i], 4)]]
        log.write(
            inference_log.entry(spec, f"r{i}", 1 + i % 2, "primary", [{"row": i}], outputs, latency[i] / 1000)
        )
    log.close()
    found = tmp_path / "labels.csv"
    found.write_text("request_id,label\n" + "".join(f"r{i},{labels[i]}\n" for i in range(rows_count)))
    return found


def test_compare_says_how_many_samples_a_close_call_still_needs(repo: Path, tmp_path: Path) -> None:
    labels = close_call_log(repo, tmp_path)
    proc = run_mlops("compare", "churn", "--env", "staging", "--labels", str(labels), "-o", "json", cwd=repo)
    result = json.loads(proc.stdout)
    assert proc.returncode == 3 and result["verdict"] == "not enough data", result
    assert (result["baseline"], result["challenger"]) == (1, 2)
    auc = next(m for m in result["measures"] if m["measure"] == "roc_auc")
    assert auc["ci_low"] < 0 < auc["ci_high"] and auc["samples_needed"] > 0
    assert result["samples_needed"] >= auc["samples_needed"]
    one = run_mlops("compare", "churn", "--env", "staging", "--baseline", "4", cwd=repo)
    assert one.returncode == 2 and "--baseline: v4 answered no request in the log" in one.stderr


def test_under_watch_a_bad_canary_is_rolled_back_while_clients_are_served(repo: Path) -> None:
    """The deploy host's way: `mlops reconcile --watch` steps the rollout between its rounds
    while a client keeps sending requests; none fails, and none reaches the canary once its
    rollback is recorded."""
    import os
    import sys
    import threading

    from ..conftest import base_env

    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    url, batch = url_of(repo), rows(300)
    answers: list[tuple[float, int]] = []
    stop = threading.Event()

    def client() -> None:
        index = 0
        while not stop.is_set():
            status, body = http("POST", f"{url}/predict", {"dataframe_records": [batch[index % len(batch)]]})
            answers.append((time.monotonic(), body["version"] if status == 200 else 0))
            index += 1

    rollout = {**ROLLOUT, "threshold": 1, "checks": {"min_requests": 20, "max_class_shift": 0.15}}
    set_manifest(repo, "staging", "v5 under a rollout", version=5, rollout=rollout)
    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    env = {**base_env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    watch = ["reconcile", "--env", "staging", "--watch", "--interval", "0.5"]
    watcher = subprocess.Popen(
        [sys.executable, "-m", "mlops_gitops.cli", *watch], cwd=repo, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(
            r.get("result") == "rolled-back" for r in records(repo)
        ):
            time.sleep(0.1)
        recorded = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join()
        watcher.terminate()
        watcher.wait(timeout=30)
    assert any(r.get("result") == "rolled-back" for r in records(repo)), records(repo)
    canary = [at for at, version in answers if version == 5]
    assert canary, "the canary answered no request"
    assert [v for _, v in answers if v not in (1, 5)] == []  # no request failed
    assert [at for at in canary if at > recorded] == []
    assert aliases(repo) == {"staging": 1}
