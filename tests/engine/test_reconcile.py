"""The reconciler against real processes: real git history, a real MLflow registry (sqlite),
real model servers on loopback ports, real HTTP clients, real signals. Nothing is faked."""

from __future__ import annotations

import fcntl
import itertools
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ..conftest import base_env, run_mlops
from .helpers import Poller, aliases, example, http, records, served_repo, set_manifest, url_of
from .mlflow_server import free_port

__all__ = ["served_repo"]  # the fixture `repo`: a copy of the registered repository

pytestmark = pytest.mark.slow


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


# A predict that answers the server's load-time smoke test, then holds every later request
# until the test releases it, and fails it (`register_code`: `time` in scope; open() as a probe).
HELD = """
self.calls = getattr(self, "calls", 0) + 1
if self.calls == 1:
    return np.zeros((len(model_input), 2))
open({entered!r}, "w").close()
for _ in range(6000):
    try:
        open({release!r}).close()
        break
    except FileNotFoundError:
        time.sleep(0.01)
raise RuntimeError("held, then broken")
"""


def test_a_request_in_flight_when_the_switch_back_lands_is_still_answered(repo: Path, tmp_path: Path) -> None:
    """A request reaches the new version, which fails it only after the reconciler has switched
    back: the request keeps the routing it started on, so the fallback of that routing answers it.
    (It used to read the server's probation, which the switch back had just ended: a 500.)"""
    import threading

    from .registered import register_code, registry_of

    set_manifest(repo, "staging", "v2", version=2)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    url, spec = url_of(repo), json.loads((repo / ".mlops/servers/staging/churn.spec.json").read_text())
    token = {"X-Mlops-Token": (repo / ".mlops/servers/staging/churn.token").read_text().strip()}
    entered, release = tmp_path / "entered", tmp_path / "release"
    registry = registry_of(repo)
    number = register_code(registry, "churn", HELD.format(entered=str(entered), release=str(release)), "held")
    held = registry.fetch_verified("churn", number, repo / ".mlops/artifacts")  # as the reconciler fetches it
    switch = {**spec, "primary": [{"version": number, "path": str(held.path), "percent": 100}]}
    assert http("POST", f"{url}/-/reload", switch, headers=token)[0] == 200  # on probation, v2 its fallback

    answers: list[tuple[int, Any]] = []
    client = threading.Thread(
        target=lambda: answers.append(http("POST", f"{url}/predict", {"dataframe_records": example(repo, 2)}))
    )
    client.start()
    deadline = time.monotonic() + 30
    while not entered.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert entered.exists()  # the request is inside the held version's predict
    assert http("POST", f"{url}/-/reload", spec, headers=token)[0] == 200  # the switch back lands
    assert http("GET", f"{url}/health")[1]["probation"] is None
    release.touch()
    client.join(timeout=30)
    ((status, answer),) = answers
    assert (status, answer.get("version")) == (200, 2), answer

    # then the same version as a canary, stepped up to all traffic and aborted: the split starts a
    # probation with v2 as its fallback, each step carries it on (the same fallback, the same
    # end), and the abort, back to v2 alone, ends it
    stable, canary = spec["primary"][0], switch["primary"][0]
    seen = []
    for percent in (10, 50, 100):
        steps = [{**stable, "percent": 100 - percent}] if percent < 100 else []
        step = {**spec, "primary": [*steps, {**canary, "percent": percent}]}
        assert http("POST", f"{url}/-/reload", step, headers=token)[0] == 200
        seen.append(http("GET", f"{url}/health")[1]["probation"])
        time.sleep(1.1)
    assert all(p["fallback"] == [{"version": 2, "percent": 100}] for p in seen), seen
    lefts = [p["seconds_left"] for p in seen]
    assert lefts[0] - lefts[1] >= 1 and lefts[1] - lefts[2] >= 1, lefts  # one probation, not three
    assert http("POST", f"{url}/-/reload", spec, headers=token)[0] == 200
    assert http("GET", f"{url}/health")[1]["probation"] is None


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
    project = repo / "mlops.yaml"  # the teams named, as production needs (no placeholder owners)
    project.write_text(project.read_text().replace("@acme/", "@lend-co/"))
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
