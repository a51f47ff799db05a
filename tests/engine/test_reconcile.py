"""The reconciler against real processes: real git history, a real MLflow registry (sqlite),
real model servers on loopback ports, real HTTP clients, real signals. Nothing is faked."""

from __future__ import annotations

import csv
import fcntl
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import base_env, git_commit_all, run_mlops
from .mlflow_server import free_port

pytestmark = pytest.mark.slow


def set_manifest(repo: Path, env: str, message: str, **fields: Any) -> None:
    path = repo / "environments" / env / "churn.yaml"
    text = path.read_text()
    for key, value in fields.items():
        rendered = yaml.safe_dump({key: value}, default_flow_style=True, width=1 << 20).strip()[1:-1]
        pattern = re.compile(rf"^#? ?{key}:.*$", re.MULTILINE)
        text = pattern.sub(rendered, text, count=1) if pattern.search(text) else text + rendered + "\n"
    path.write_text(text)
    git_commit_all(repo, message)


def http(
    method: str, url: str, body: Any = None, raw: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def example(repo: Path, version: int = 1) -> list[dict[str, Any]]:
    """The input example of a deployed version (MLflow's input_example.json, as records)."""
    from mlops_gitops.core.protocols import input_example

    return input_example(repo / f".mlops/artifacts/churn/v{version}/model")


@pytest.fixture
def repo(served: Path) -> Path:
    return served


def url_of(repo: Path, env: str = "staging") -> str:
    state = json.loads((repo / f".mlops/servers/{env}/churn.json").read_text())
    return f"http://{state['host']}:{state['port']}"


def records(repo: Path, env: str = "staging") -> list[dict[str, Any]]:
    path = repo / f".mlops/records/{env}/churn.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def aliases(repo: Path) -> dict[str, int]:
    from mlflow import MlflowClient

    return {
        k: int(v)
        for k, v in MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
        .get_registered_model("churn")
        .aliases.items()
    }


class Poller:
    """A client predicting in a loop: every answer's status and version, to prove no gap."""

    def __init__(self, url: str, records: list[dict[str, Any]]):
        self.url, self.records = url, records
        self.answers: list[tuple[int, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status, body = http("POST", f"{self.url}/predict", {"dataframe_records": self.records[:1]})
                self.answers.append((status, body.get("version") if isinstance(body, dict) else None))
            except OSError as exc:
                self.answers.append((0, str(exc)))
            time.sleep(0.01)

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_deploy_then_a_second_run_changes_nothing(repo: Path) -> None:
    set_manifest(repo, "staging", "v1 to staging", version=1)
    plan = run_mlops("plan", "--env", "staging", "-o", "json", cwd=repo)
    assert plan.returncode == 1, plan.stderr  # something would change
    (change,) = json.loads(plan.stdout)["changes"]
    assert (change["action"], change["sync"], change["health"]) == ("create", "OutOfSync", "missing")

    first = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert first.returncode == 0, first.stdout + first.stderr
    (result,) = json.loads(first.stdout)["results"]
    assert (result["action"], result["result"], result["version"]) == ("create", "healthy", 1)
    url = url_of(repo)
    assert url.startswith("http://127.0.0.1:")  # loopback unless configured otherwise

    status, answer = http("POST", f"{url}/predict", {"dataframe_records": example(repo)})
    assert status == 200 and answer["version"] == 1 and len(answer["predictions"]) == 3
    assert all(abs(sum(row) - 1) < 1e-6 for row in answer["predictions"])  # predict_proba rows
    status, meta = http("GET", f"{url}/metadata")
    assert meta["traffic"] == [{"version": 1, "percent": 100}]
    assert len(meta["lineage"]["1"]["mlops.artifact_sha256"]) == 64
    assert aliases(repo) == {"staging": 1}
    (record,) = records(repo)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    assert (record["result"], record["version"], record["revision"]) == ("healthy", 1, head)
    assert record["by"] and record["at"] and len(record["artifact_sha256"]) == 64

    logged = (repo / ".mlops/inference/staging/churn.jsonl").read_text().splitlines()
    entry = json.loads(logged[-1])
    assert entry["request_id"] == answer["request_id"] and entry["version"] == 1
    assert entry["inputs"] == example(repo) and entry["outputs"] == answer["predictions"]

    again = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert again.returncode == 0
    assert [r["result"] for r in json.loads(again.stdout)["results"]] == ["unchanged"]
    assert len(records(repo)) == 1  # nothing applied, nothing recorded
    assert run_mlops("plan", "--env", "staging", cwd=repo).returncode == 0  # in sync
    status_out = run_mlops("status", "-o", "json", cwd=repo)
    staging = next(d for d in json.loads(status_out.stdout)["deployments"] if d["environment"] == "staging")
    assert (staging["serving"], staging["health"], staging["sync"], staging["url"]) == (
        "v1",
        "healthy",
        "Synced",
        url,
    )


def test_update_and_automatic_rollback_without_a_failed_request(repo: Path) -> None:
    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    url = url_of(repo)
    with Poller(url, example(repo)) as poller:
        set_manifest(repo, "staging", "v2", version=2)
        updated = run_mlops("reconcile", "--env", "staging", cwd=repo)
        assert updated.returncode == 0, updated.stderr
        set_manifest(repo, "staging", "v3 (broken)", version=3)
        broken = run_mlops("reconcile", "--env", "staging", cwd=repo)
        time.sleep(0.3)
    assert broken.returncode == 1
    error = broken.stderr.replace("\n", " ")
    assert "churn in staging" in error and "v3" in error and "HealthCheckFailed" in error
    assert "broken on purpose" in error and "rolled back to v2" in error
    statuses = {status for status, _ in poller.answers}
    assert statuses == {200}, [a for a in poller.answers if a[0] != 200][:3]
    versions = [v for _, v in poller.answers]
    assert versions[0] == 1 and versions[-1] == 2 and 3 not in versions
    assert versions == sorted(versions)  # switched once, never back and forth
    assert aliases(repo) == {"staging": 2}
    from mlflow import MlflowClient

    tags = {
        v: MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_model_version("churn", v).tags for v in "123"
    }
    healthy_at = [r["at"] for r in records(repo) if r["result"] == "healthy"]
    assert tags["1"]["mlops.deploy.staging.result"] == "replaced"  # its soak ended when v2 took over
    assert tags["1"]["mlops.deploy.staging.healthy_until"] == healthy_at[1]
    assert (tags["2"]["mlops.deploy.staging.result"], tags["2"]["mlops.deploy.staging.healthy_since"]) == (
        "healthy",
        healthy_at[1],
    )
    assert tags["3"]["mlops.deploy.staging.rollbacks"] == "1"
    assert records(repo)[-1]["recovery_s"] == 0.0  # v3 never got switched in
    assert [(r["result"], r["version"]) for r in records(repo)] == [
        ("healthy", 1),
        ("healthy", 2),
        ("rolled-back", 2),
    ]
    assert records(repo)[-1]["previous"] == 3 and "HealthCheckFailed" in records(repo)[-1]["reason"]
    plan = json.loads(run_mlops("plan", "--env", "staging", "-o", "json", cwd=repo).stdout)["changes"][0]
    assert (plan["sync"], plan["health"], plan["live"], plan["desired"]) == (
        "OutOfSync",
        "healthy",
        "v2",
        "v3",
    )


def test_a_version_failing_after_the_switch_is_switched_back(repo: Path) -> None:
    """v4 passes the server's load-time smoke test, is switched in, then fails the reconciler's
    health check over HTTP: the old version is switched back, and the time it took is recorded."""
    set_manifest(repo, "staging", "v2", version=2)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    url = url_of(repo)
    set_manifest(repo, "staging", "v4 (fails after one prediction)", version=4)
    with Poller(url, example(repo, 2)) as poller:  # clients all along: the probation answers them
        flaky = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
        time.sleep(0.3)
    assert flaky.returncode == 1, flaky.stderr
    assert {status for status, _ in poller.answers} == {200}, [a for a in poller.answers if a[0] != 200][:3]
    assert {version for _, version in poller.answers} == {2}  # v4 never answered a client
    (result,) = json.loads(flaky.stdout)["results"]
    assert (result["result"], result["reason"], result["version"], result["previous"]) == (
        "rolled-back",
        "HealthCheckFailed",
        2,
        4,
    )
    assert 0 < result["recovery_s"] < 30
    assert "serving again after" in result["message"]
    assert records(repo)[-1]["recovery_s"] == result["recovery_s"]
    status, answer = http("POST", f"{url}/predict", {"dataframe_records": example(repo, 2)})
    assert (status, answer["version"]) == (200, 2)
    assert aliases(repo) == {"staging": 2}
    assert http("GET", f"{url}/health")[1]["probation"] is None  # switched back: probation over

    # v4 switched in by hand and left there: within the probation window a request that fails on
    # it is answered by v2 and counted against v4; the reconciler's own check is never covered
    spec = json.loads((repo / ".mlops/servers/staging/churn.spec.json").read_text())
    v4 = str(repo / ".mlops/artifacts/churn/v4/model")
    token = {"X-Mlops-Token": (repo / ".mlops/servers/staging/churn.token").read_text().strip()}
    status, _ = http(
        "POST",
        f"{url}/-/reload",
        {**spec, "primary": [{"version": 4, "path": v4, "percent": 100}]},
        headers=token,
    )
    assert status == 200
    for _ in range(3):
        status, answer = http("POST", f"{url}/predict", {"dataframe_records": example(repo, 2)})
        assert (status, answer["version"]) == (200, 2)
    probation = http("GET", f"{url}/health")[1]["probation"]
    assert probation["fallback"] == [{"version": 2, "percent": 100}]
    assert int(probation["failed_requests"]["4"]) >= 3
    assert 0 < probation["seconds_left"] <= 300
    forced = http(
        "POST",
        f"{url}/predict",
        {"dataframe_records": example(repo, 2)},
        headers={**token, "X-Mlops-Version": "4"},
    )
    assert forced[0] == 500  # the smoke test sees the failure itself
    failed = [
        json.loads(line) for line in (repo / ".mlops/inference/staging/churn.jsonl").read_text().splitlines()
    ]
    assert sum(1 for e in failed if e.get("error") and e["version"] == 4) >= 3  # in the log, not as traffic
    status_out = json.loads(run_mlops("status", "--env", "staging", "-o", "json", cwd=repo).stdout)
    (row,) = status_out["deployments"]
    assert row["health"] == "degraded"  # failures the previous version covered still count
    # the reconciler counts those failures against v4 and switches back to what served before it
    again = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert again.returncode == 1, again.stdout + again.stderr
    (result,) = json.loads(again.stdout)["results"]
    assert (result["result"], result["version"], result["previous"]) == ("rolled-back", 2, 4)
    health = http("GET", f"{url}/health")[1]
    assert (health["versions"], health["probation"]) == ([2], None)


def test_killed_mid_apply_the_next_run_converges(repo: Path) -> None:
    set_manifest(repo, "staging", "v1", version=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops_gitops.cli", "reconcile", "--env", "staging"],
        cwd=repo,
        env={**base_env(), "PYTHONPATH": str(repo / "scripts")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = repo / ".mlops/servers/staging/churn.json"
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # after the port is claimed, before health and alias
    proc.wait()
    assert state.exists()
    rerun = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    status, health = http("GET", f"{url_of(repo)}/health")
    assert status == 200 and health["versions"] == [1]
    assert json.loads(state.read_text())["pid"] == health["pid"]  # one server, the one recorded
    assert aliases(repo) == {"staging": 1}
    assert run_mlops("plan", "--env", "staging", cwd=repo).returncode == 0
    assert records(repo)[-1]["result"] == "healthy"


def test_one_reconciler_per_environment(repo: Path) -> None:
    set_manifest(repo, "staging", "v1", version=1)
    lock = repo / ".mlops/locks/staging.lock"
    lock.parent.mkdir(parents=True)
    with lock.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242")
        held.flush()
        second = run_mlops("reconcile", "--env", "staging", cwd=repo)
    assert second.returncode == 2
    assert "another reconcile is running (pid 4242" in second.stderr
    assert not (repo / ".mlops/servers/staging/churn.json").exists() and records(repo) == []
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0  # released: the next one runs


def test_registry_unreachable_changes_nothing(repo: Path) -> None:
    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    set_manifest(repo, "staging", "v2", version=2)
    dead = f"http://127.0.0.1:{free_port()}"
    proc = run_mlops("reconcile", "--env", "staging", cwd=repo, env_extra={"MLFLOW_TRACKING_URI": dead})
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().startswith("error: registry http://127.0.0.1:")
        and len(proc.stderr.strip().splitlines()) == 1
    )
    assert http("GET", f"{url_of(repo)}/health")[1]["versions"] == [1]  # still serving
    assert len(records(repo)) == 1


def pin_ports(repo: Path) -> int:
    """deploy.local.base_port set, as a team that wants fixed ports sets it; the port."""
    port = free_port()
    project = repo / "mlops.yaml"
    project.write_text(project.read_text().replace("# base_port: 8700", f"base_port: {port}"))
    git_commit_all(repo, "pinned ports")
    return port


def test_a_pinned_port_in_use_is_refused_clearly(repo: Path) -> None:
    port = pin_ports(repo)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        set_manifest(repo, "staging", "v1", version=1)
        proc = run_mlops("reconcile", "--env", "staging", cwd=repo)
    assert proc.returncode == 1
    assert f"127.0.0.1:{port} is in use by another process" in proc.stderr.replace("\n", " ")
    assert "TargetUnavailable" in proc.stderr
    assert aliases(repo) == {}
    assert records(repo)[-1]["result"] == "failed"


def test_ports_are_found_free_recorded_and_a_taken_one_replaced(repo: Path, tmp_path: Path) -> None:
    """Without base_port each server gets a port the OS finds free: two copies of one project (two
    projects on one host) never collide, and a server whose recorded port was taken while it was
    down comes back on another one, recorded again."""
    other = tmp_path / "other"
    shutil.copytree(repo, other, symlinks=True)
    for copy in (repo, other):
        set_manifest(copy, "staging", "v1", version=1)
        assert run_mlops("reconcile", "--env", "staging", cwd=copy).returncode == 0
    try:
        first, second = url_of(repo), url_of(other)
        assert first != second
        assert records(repo)[-1]["url"] == first and records(other)[-1]["url"] == second
        port = int(first.rsplit(":", 1)[1])
        state = json.loads((repo / ".mlops/servers/staging/churn.json").read_text())
        assert run_mlops("down", cwd=repo).returncode == 0
        (repo / ".mlops/servers/staging/churn.json").parent.mkdir(parents=True, exist_ok=True)
        (repo / ".mlops/servers/staging/churn.json").write_text(json.dumps({**state, "pid": None}))
        with socket.socket() as squatter:  # another program took the port while the server was down
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the old one's TIME_WAIT
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            proc = run_mlops("reconcile", "--env", "staging", cwd=repo)
            assert proc.returncode == 0, proc.stderr
            moved = url_of(repo)
        assert moved != first and records(repo)[-1]["url"] == moved
        assert http("GET", f"{moved}/health")[1]["versions"] == [1]
    finally:
        run_mlops("down", cwd=other)


def test_a_missing_version_is_a_clear_error_and_nothing_changes(repo: Path) -> None:
    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    set_manifest(repo, "staging", "v99", version=99)
    proc = run_mlops("reconcile", "--env", "staging", cwd=repo)
    assert proc.returncode == 1
    message = proc.stderr.replace("\n", " ")
    assert "environments/staging/churn.yaml" in message and "VerifyFailed" in message and "v99" in message
    assert http("GET", f"{url_of(repo)}/health")[1]["versions"] == [1]
    assert aliases(repo) == {"staging": 1}


def test_an_artifact_altered_after_registration_is_refused(repo: Path) -> None:
    from mlflow import MlflowClient

    download = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_model_version_download_uri("churn", "2")
    folder = Path(download.removeprefix("file://"))
    original = (folder / "MLmodel").read_bytes()
    try:
        (folder / "MLmodel").write_bytes(original + b"\n# altered\n")
        set_manifest(repo, "staging", "v2", version=2)
        proc = run_mlops("reconcile", "--env", "staging", cwd=repo)
    finally:
        (folder / "MLmodel").write_bytes(original)  # the registry is shared by this module's tests
    assert proc.returncode == 1
    message = proc.stderr.replace("\n", " ")
    assert "VerifyFailed" in message and "differs from the" in message and "altered" in message
    assert not (repo / ".mlops/servers/staging/churn.json").exists()
    assert not (repo / ".mlops/artifacts/churn/v2/model").exists()  # no altered copy kept
    assert aliases(repo) == {}


def test_bad_requests_get_400_or_413_and_the_server_keeps_serving(repo: Path) -> None:
    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    url, good = url_of(repo), example(repo)[0]
    cases = [
        (
            {"dataframe_records": [{k: v for k, v in good.items() if k != "age"}]},
            400,
            "records[0].age: missing",
        ),
        (
            {"dataframe_records": [{**good, "age": "old"}]},
            400,
            'records[0].age: "old" (expected an integer within 64 bits)',
        ),
        ({"dataframe_records": [{**good, "colour": 1}]}, 400, "records[0].colour: unknown field"),
        ({"dataframe_records": []}, 400, "non-empty list"),
        ({"rows": [good]}, 400, "dataframe_records"),
    ]
    for body, code, text in cases:
        status, answer = http("POST", f"{url}/predict", body)
        assert (status, text in answer["error"]) == (code, True), answer
    status, answer = http("POST", f"{url}/predict", raw=b"{not json")
    assert status == 400 and "not JSON" in answer["error"]
    status, answer = http("POST", f"{url}/predict", raw=b" " * (2 << 20))
    assert status == 413 and "expected at most" in answer["error"]
    # A client that sends its headers, then its body a moment later (after the server has
    # decided on 413), still gets the 413 rather than a reset connection and a broken pipe.
    host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
    with socket.create_connection((host, port), timeout=30) as sock:
        size = 3 << 20
        sock.sendall(f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
        time.sleep(0.3)
        sock.sendall(b" " * size)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413"), reply[:80]
    status, answer = http("POST", f"{url}/predict", [good, good])  # a bare batch
    assert status == 200 and len(answer["predictions"]) == 2
    assert http("GET", f"{url}/health")[0] == 200


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


def test_suspend_and_prune(repo: Path) -> None:
    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    set_manifest(repo, "staging", "v2 but suspended", version=2, suspend=True)
    plan = json.loads(run_mlops("plan", "--env", "staging", "-o", "json", cwd=repo).stdout)["changes"][0]
    assert (plan["action"], plan["sync"]) == ("suspended", "Synced")
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    assert http("GET", f"{url_of(repo)}/health")[1]["versions"] == [1]

    set_manifest(repo, "staging", "churn leaves staging", version=None, suspend=False)
    plan = json.loads(run_mlops("plan", "--env", "staging", "-o", "json", cwd=repo).stdout)["changes"]
    assert [(c["action"], c["detail"]) for c in plan] == [("remove", "version is null")]
    kept = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert json.loads(kept.stdout)["results"][0]["result"] == "skipped"  # pruning is opt-in
    empty = run_mlops("reconcile", "--env", "staging", "--prune", cwd=repo)
    assert empty.returncode == 2 and "--allow-empty" in empty.stderr
    assert http("GET", f"{url_of(repo)}/health")[0] == 200
    url = url_of(repo)
    assert run_mlops("reconcile", "--env", "staging", "--prune", "--allow-empty", cwd=repo).returncode == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/health", timeout=2)
    assert aliases(repo) == {} and records(repo)[-1]["result"] == "removed"


def test_watch_retries_with_backoff_and_a_fix_is_not_blocked(repo: Path, tmp_path: Path) -> None:
    """--watch pulls a real git remote (a bare repository standing in for GitHub)."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(repo), str(remote)], check=True)
    subprocess.run(["git", "remote", "add", "origin", str(remote)], cwd=repo, check=True)
    subprocess.run(["git", "fetch", "--quiet", "origin"], cwd=repo, check=True)
    subprocess.run(["git", "branch", "--quiet", "-u", "origin/main"], cwd=repo, check=True)
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "--quiet", str(remote), str(work)], check=True)
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops_gitops.cli",
            "reconcile",
            "--env",
            "staging",
            "--watch",
            "--interval",
            "0.5",
            "--max-backoff",
            "60",
        ],
        cwd=repo,
        env={**base_env(), "PYTHONPATH": str(repo / "scripts")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def push(version: int, message: str) -> None:
        set_manifest(work, "staging", message, version=version)
        subprocess.run(["git", "push", "--quiet", "origin", "HEAD:main"], cwd=work, check=True)

    def wait_for(predicate: Any, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        watcher.kill()
        raise AssertionError(watcher.communicate()[0][-3000:])

    try:
        push(1, "v1")
        wait_for(lambda: any(r["result"] == "healthy" and r["version"] == 1 for r in records(repo)))
        push(3, "v3 (broken)")
        wait_for(lambda: sum(r["result"] == "rolled-back" for r in records(repo)) >= 2)  # retried
        push(2, "v2 fixes it")
        wait_for(
            lambda: records(repo)[-1]["result"] == "healthy" and records(repo)[-1]["version"] == 2, timeout=60
        )
    finally:
        watcher.terminate()
        log = watcher.communicate(timeout=30)[0]
    waits = [float(w) for w in re.findall(r"next reconcile in ([0-9.]+)s", log)]
    assert any(b > a for a, b in itertools.pairwise(waits)), waits  # backoff grew
    assert http("GET", f"{url_of(repo)}/health")[1]["versions"] == [2]


def test_rollback_reverts_the_last_promotion(repo: Path) -> None:
    set_manifest(repo, "staging", "Promote churn v1 to staging", version=1)
    set_manifest(repo, "staging", "Promote churn v2 to staging", version=2)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    proc = run_mlops("rollback", "churn", "--env", "staging", "--no-pr", "-o", "json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["from_version"], result["to_version"], result["branch"]) == (
        2,
        1,
        "rollback/churn-staging-v1",
    )
    show = subprocess.run(
        ["git", "show", "--format=%B", "--stat", result["branch"]], cwd=repo, capture_output=True, text=True
    ).stdout
    assert "Roll back churn in staging to v1" in show and "Routing: v2 100% -> v1 100%" in show
    # v1 never served here (no record of it): the point is what main asked for before
    assert "Returns to: commit " in show and "environments/staging/churn.yaml |" in show
    assert "version: 2" in (repo / "environments/staging/churn.yaml").read_text()  # main untouched

    now = run_mlops(
        "rollback", "churn", "--env", "staging", "--direct", "--now", "--reason", "incident 42", cwd=repo
    )
    assert now.returncode == 0, now.stdout + now.stderr
    assert http("GET", f"{url_of(repo)}/health")[1]["versions"] == [1]
    last = records(repo)[-1]
    assert last["result"] == "break-glass" and "incident 42" in last["reason"]
    assert run_mlops("down", cwd=repo).returncode == 0
    assert not (repo / ".mlops/servers/staging/churn.json").exists()


def shifted(stamp: str, hours: float) -> str:
    from datetime import datetime, timedelta

    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(hours=hours)
    return moment.isoformat().replace("+00:00", "Z")


def test_production_waits_for_the_soak_that_the_staging_record_proves(repo: Path, tmp_path: Path) -> None:
    """The promotion gate end to end: reconcile staging (the record), promote to production,
    judge at injected times: too early (the soak named), after the soak (allowed), and with
    a tampered artifact hash (denied). A medium-risk model, so one reviewer is enough and
    the soak is the question."""
    model_yaml = repo / "models/churn/model.yaml"
    model_yaml.write_text(model_yaml.read_text().replace("risk_tier: high", "risk_tier: medium"))
    set_manifest(repo, "staging", "Promote churn v1 to staging", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    healthy_since = records(repo)[-1]["at"]
    promoted = run_mlops("promote", "churn", "--to", "production", "--version", "1", "--no-pr", cwd=repo)
    assert promoted.returncode == 0, promoted.stderr

    def gate(now: str) -> tuple[int, str, dict[str, Any]]:
        facts = run_mlops("facts", "--base", "main", "--now", now, "--out", str(tmp_path / "facts"), cwd=repo)
        assert facts.returncode == 0, facts.stderr
        (path,) = (tmp_path / "facts").glob("*.json")
        check = run_mlops("check", str(path), "--namespace", "promotion", "-o", "json", cwd=repo)
        return check.returncode, check.stdout, json.loads(path.read_text())

    code, out, doc = gate(shifted(healthy_since, 1))
    assert doc["history"]["staging"]["healthy_since"] == healthy_since
    assert doc["history"]["staging"]["result"] == "healthy"
    failures = [f["msg"] for r in json.loads(out) for f in r["failures"]]
    assert code == 1 and failures == [
        "churn v1 to production: healthy in staging for 1h of the 24h soak (expected the soak to pass first)"
    ]
    code, out, _ = gate(shifted(healthy_since, 25))
    assert code == 0, out  # the soak has passed: allowed

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    client.set_model_version_tag("churn", "1", "mlops.artifact_sha256", "e" * 64)  # a hash that lies
    code, out, _ = gate(shifted(healthy_since, 25))
    failures = [f["msg"] for r in json.loads(out) for f in r["failures"]]
    assert code == 1 and len(failures) == 1, failures
    assert "not the eeeeeeeeeeee recorded at registration" in failures[0]


def raw_exchange(url: str, request: bytes, pause: float = 0.0, more: bytes = b"") -> bytes:
    """Send raw bytes (and, after `pause`, more); everything the server answers until it closes
    or goes quiet for 15 s."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as sock:
        sock.sendall(request)
        if pause:
            time.sleep(pause)
        if more:
            sock.sendall(more)
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
                if b"\r\n\r\n" in reply:
                    head, _, body = reply.partition(b"\r\n\r\n")
                    size = re.search(rb"Content-Length: (\d+)", head)
                    if size and len(body) >= int(size.group(1)):
                        break
        except TimeoutError:
            pass
    return reply


def test_the_server_is_neither_starved_nor_fooled(repo: Path) -> None:
    """Lengths that lie, bodies that stall, JSON nested without end, integers no column holds and
    methods it does not serve: each a 4xx with a JSON body naming what is wrong, never a 500, a
    hang or a dropped connection; and the server keeps answering."""
    set_manifest(repo, "staging", "v1", version=1)
    proc = run_mlops("reconcile", "--env", "staging", cwd=repo, env_extra={"MLOPS_SERVE_BODY_TIMEOUT": "2"})
    assert proc.returncode == 0, proc.stderr
    url, good = url_of(repo), example(repo)[0]
    for length in ("-1", "+5", "0x10", "1e3", ""):
        reply = raw_exchange(
            url, f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode()
        )
        assert reply.startswith(b"HTTP/1.1 400") and b"expected a whole number of bytes" in reply, (
            length,
            reply[:200],
        )
    started = time.monotonic()  # 100 bytes promised, 10 sent: a 408 within the body timeout
    reply = raw_exchange(url, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"{" * 10)
    assert reply.startswith(b"HTTP/1.1 408") and b"10 of 100 bytes in 2 s" in reply, reply[:300]
    assert time.monotonic() - started < 10
    deep = b'{"dataframe_records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for path in ("/predict", "/invocations", "/v2/models/churn/infer"):
        status, answer = http("POST", f"{url}{path}", raw=deep)
        assert status == 400 and "nested too deep" in (answer.get("error") or answer.get("message")), (
            path,
            answer,
        )
    nested = {"inputs": [{"name": "age", "shape": [1], "datatype": "INT64", "data": [[[[[[[[[[30]]]]]]]]]]}]}
    status, answer = http("POST", f"{url}/v2/models/churn/infer", nested)
    assert status == 400 and "inputs[0] (age).data" in answer["error"]
    for field, value, expected in (
        ("age", 2**70, "an integer within 64 bits"),
        ("monthly_charges", 10**400, "a number"),
    ):
        raw = json.dumps({"dataframe_records": [{**good, field: value}]}).encode()
        status, answer = http("POST", f"{url}/predict", raw=raw)
        assert status == 400 and f"records[0].{field}:" in answer["error"] and expected in answer["error"], (
            answer
        )
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        request = urllib.request.Request(f"{url}/predict", data=b"{}", method=method)
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError(f"{method} was answered")
        except urllib.error.HTTPError as exc:
            assert exc.code == 405 and exc.headers["Allow"] == "GET, POST"
            assert "not allowed (expected GET or POST)" in json.loads(exc.read())["error"]
    head = raw_exchange(url, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405") and head.endswith(b"\r\n\r\n")  # no body to HEAD
    status, answer = http("POST", f"{url}/predict", {"dataframe_records": [good]})
    assert status == 200 and len(answer["predictions"]) == 1  # still serving


LOOK_ALIKE = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port, answer, seen = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]


class Handler(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        with open(seen, "a") as out:
            out.write(json.dumps({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                  "body": self.rfile.read(length).decode(errors="replace")}) + "\n")
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def test_the_reconciler_talks_only_to_what_it_started(repo: Path, tmp_path: Path) -> None:
    """#15 class 4: after a crash, a look-alike on the recorded port that answers /health exactly as
    the real server did (a replayed proof included) is never sent the token, never recorded healthy
    and never signaled; and `mlops down` never signals a pid that another process now has."""
    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    url, state_file = url_of(repo), repo / ".mlops/servers/staging/churn.json"
    state = json.loads(state_file.read_text())
    assert state["started"]  # the process's identity, beside its pid
    challenge = "ab" * 16
    status, replay = http("GET", f"{url}/health", headers={"X-Mlops-Challenge": challenge})
    assert status == 200 and len(replay["proof"]) == 64
    assert http("GET", f"{url}/health")[1].get("proof") is None  # no challenge, no proof
    os.kill(state["pid"], signal.SIGKILL)  # the server crashes
    port = int(url.rsplit(":", 1)[1])
    seen = tmp_path / "seen.jsonl"
    deadline = time.monotonic() + 30
    look_alike = None
    while look_alike is None or look_alike.poll() is not None:
        assert time.monotonic() < deadline, "the port was not freed"
        time.sleep(0.2)
        look_alike = subprocess.Popen(
            [sys.executable, "-c", LOOK_ALIKE, str(port), json.dumps(replay), str(seen)]
        )
        time.sleep(0.5)
    try:
        while not port_answers(port):
            time.sleep(0.1)
        status_out = run_mlops("status", "--env", "staging", "-o", "json", cwd=repo)
        (row,) = json.loads(status_out.stdout)["deployments"]
        assert row["health"] != "healthy", row
        proc = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        moved = url_of(repo)
        assert moved != url  # a server of ours, on another port
        assert records(repo)[-1]["url"] == moved and records(repo)[-1]["result"] == "healthy"
        assert http("GET", f"{moved}/health")[1]["versions"] == [1]
        asked = [json.loads(line) for line in seen.read_text().splitlines()]
        assert asked and all(a["method"] == "GET" and a["path"] == "/health" for a in asked)
        token = (repo / ".mlops/servers/staging/churn.token").read_text().strip()
        assert not any(token in json.dumps(a) for a in asked)  # the secret never left
        assert all(a["headers"].get("X-Mlops-Challenge") not in (None, challenge) for a in asked)

        # a pid reused by another process: `mlops down` must not signal it
        ours = json.loads(state_file.read_text())
        os.kill(ours["pid"], signal.SIGKILL)
        time.sleep(0.5)
        stranger = subprocess.Popen(["sleep", "60"])
        state_file.write_text(json.dumps({**ours, "pid": stranger.pid}))
        try:
            assert run_mlops("down", cwd=repo).returncode == 0
            assert stranger.poll() is None  # still running: never signaled
        finally:
            stranger.kill()
            stranger.wait()
        assert look_alike.poll() is None  # nor was the look-alike
    finally:
        look_alike.kill()
        look_alike.wait()


def port_answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
