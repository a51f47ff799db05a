"""`mlops collect` facing a hostile sender: a real collector process on a loopback port, spoken
to over raw HTTP. The inference log it writes feeds the canary analysis, drift, feedback and
compare, so it takes events only from the holder of its token, only for a version that serves,
each once, within bounds of time and memory, and answers anything malformed with a 400 and
one line.

KServe's own logger (a Go agent) cannot run here; what it sends is built as its source sends it
(kserve/kserve pkg/logger/worker.go, binary content mode), and the token as Go's HTTP client
sends a URL's user info: `Authorization: Basic base64(user:password)`."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import run_mlops
from . import peers
from .mlflow_server import free_port

TOKEN = "collector-token-" + "x" * 24
BASIC = "Basic " + base64.b64encode(f"logger:{TOKEN}".encode()).decode()
REQUEST_BODY = {"dataframe_records": [{"tenure": 3, "plan": "basic"}, {"tenure": 40, "plan": "pro"}]}
RESPONSE_BODY = {"predictions": [0.8, 0.1]}


class Collector:
    def __init__(self, port: int, repo: Path, pid: int):
        self.port = port
        self.repo = repo
        self.pid = pid

    def post(
        self, body: bytes | Any, headers: dict[str, str], auth: str | None = BASIC
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(
                "POST", "/", raw, {**headers, **({"Authorization": auth} if auth is not None else {})}
            )
            answer = connection.getresponse()
            return answer.status, json.loads(answer.read()), dict(answer.getheaders())
        finally:
            connection.close()

    def health(self) -> dict[str, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", "/healthz")
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def log(self) -> list[dict[str, Any]]:
        path = self.repo / ".mlops/inference/staging/churn.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def rendered() -> dict[str, Any]:
    """churn's staging InferenceService as the kserve target renders it: v1 (default) with v2 (canary)
    at 10%, its logger pointed at the collector."""
    from mlops_gitops.deploy.targets import Desired
    from mlops_gitops.deploy.targets.kserve import Serving, render

    desired = Desired("churn", "staging", "environments/staging/churn.yaml", 1, ((1, 90), (2, 10)))
    storage = {1: "s3://models/1", 2: "s3://models/2"}
    return render(desired, "models", storage, "0" * 40, {}, Serving(logger_url="http://mlops-collect"))


def event(kind: str, ce_id: str, endpoint: str = "default", **changed: Any) -> dict[str, str]:
    """KServe's logger's headers (peers.cloudevent) for the rendered churn in staging; `changed`
    replaces annotations (`endpoints`, or any in `annotations`) or headers."""
    headers = peers.cloudevent(kind, ce_id, rendered(), endpoint)
    annotations = json.loads(headers["Ce-Annotations"])
    if "endpoints" in changed:
        annotations["mlops-gitops.dev/endpoints"] = json.dumps(changed.pop("endpoints"))
    annotations.update(changed.pop("annotations", {}))
    return {**headers, "Ce-Annotations": json.dumps(annotations), **changed}


def route(repo: Path, **fields: Any) -> None:
    path = repo / "environments/staging/churn.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest.update(fields)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))


@pytest.fixture
def collector(repo: Path, tmp_path: Path) -> Iterator[Collector]:
    """`mlops collect` with a token, a 2 s body timeout and 4 MiB for pending halves, on churn
    in staging routed v1 90% / v2 10%."""
    route(repo, version=1, traffic=[{"version": 1, "percent": 90}, {"version": 2, "percent": 10}])
    port = free_port()
    command = [sys.executable, "-m", "mlops_gitops.cli", "--repo", str(repo), "collect", "--port", str(port)]
    command += ["--body-timeout", "2", "--max-pending-mb", "4"]
    log = tmp_path / "collect" / "log"
    env = {"MLOPS_COLLECT_TOKEN": TOKEN}
    with peers.serving(command, f"http://127.0.0.1:{port}/healthz", log, env=env) as proc:
        yield Collector(port, repo, proc.pid)
    assert TOKEN not in log.read_text()


def test_only_the_holder_of_the_token_is_heard(collector: Collector) -> None:
    refused = {
        "no Authorization": None,
        "a wrong bearer token": "Bearer not-the-token",
        "a wrong password": "Basic " + base64.b64encode(b"logger:guess").decode(),
        "not base64": "Basic %%%",
        "the token with another scheme": f"Token {TOKEN}",
        "the token as the user name": "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode(),
    }
    for why, auth in refused.items():
        status, answer, headers = collector.post(REQUEST_BODY, event("request", "r-1"), auth=auth)
        assert status == 401, why
        assert "Authorization" in answer["error"] and "\n" not in answer["error"], why
        assert headers["WWW-Authenticate"].startswith("Basic"), why
    counts = collector.health()  # health stays open: the kubelet's probes carry no token
    assert (counts["unauthorized"], counts["received"], counts["pending"]) == (len(refused), 0, 0)
    # the logger URL's user info (Go sends it as Basic), and a bearer token, are both heard
    assert collector.post(REQUEST_BODY, event("request", "r-1"))[:2] == (200, {"status": "waiting"})
    joined = collector.post(RESPONSE_BODY, event("response", "r-1"), auth=f"Bearer {TOKEN}")
    assert joined[:2] == (200, {"status": "joined"})
    assert [(e["request_id"], e["version"]) for e in collector.log()] == [("r-1", 1)]


def test_beyond_loopback_a_token_is_required(repo: Path) -> None:
    proc = run_mlops("collect", "--host", "0.0.0.0", "--port", str(free_port()), cwd=repo)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "--host 0.0.0.0" in line and "MLOPS_COLLECT_TOKEN" in line and "--allow-unauthenticated" in line


def test_only_a_version_that_serves_is_logged_and_each_event_once(collector: Collector) -> None:
    refused = [
        # a version that never served (the canary endpoint claiming v3)
        (event("request", "a", "canary", endpoints={"default": 1, "canary": 3}), "does not serve"),
        # a model or environment that is not this repository's
        (
            {
                **event("request", "b", annotations={"mlops-gitops.dev/model": "fraud"}),
                "Ce-Inferenceservicename": "fraud-staging",
            },
            "not a model",
        ),
        # an InferenceService that is not the one rendered for churn in staging
        ({**event("request", "c"), "Ce-Inferenceservicename": "churn-production"}, "inferenceservicename"),
    ]
    for headers, why in refused:
        status, answer, _ = collector.post(REQUEST_BODY, headers)
        assert status == 400 and why in answer["error"], answer
    # the canary's answer counts, once: a replayed pair is acknowledged and not logged again
    for _ in range(2):
        collector.post(REQUEST_BODY, event("request", "canary-1", "canary"))
        collector.post(RESPONSE_BODY, event("response", "canary-1", "canary"))
    assert collector.post(REQUEST_BODY, event("request", "canary-1", "canary"))[1] == {"status": "duplicate"}
    # a half sent twice before its other half is held once
    assert collector.post(REQUEST_BODY, event("request", "stable-1"))[1] == {"status": "waiting"}
    assert collector.post(REQUEST_BODY, event("request", "stable-1"))[1] == {"status": "duplicate"}
    assert collector.post(RESPONSE_BODY, event("response", "stable-1"))[1] == {"status": "joined"}
    assert [(e["request_id"], e["version"]) for e in collector.log()] == [("canary-1", 2), ("stable-1", 1)]
    counts = collector.health()
    assert (counts["joined"], counts["duplicate"], counts["rejected"]) == (2, 4, 3)
    # a promotion merged (the manifest now routes v3 alone) is read without a restart; v2's
    # answers still in flight are taken for a while
    route(collector.repo, version=3, traffic=None)
    three = event("request", "v3-1", "canary", endpoints={"default": 3, "canary": 2})
    assert collector.post(REQUEST_BODY, three)[0] == 200
    assert collector.post(REQUEST_BODY, event("request", "v2-late", "canary"))[0] == 200
    assert collector.post(REQUEST_BODY, event("request", "v4", endpoints={"default": 4}))[0] == 400
    # an analysed rollout promoting v6: the manifest names v6 alone; its stable (here v5, which
    # this collector never saw routed) is an earlier version, and is taken; a later one is not
    route(collector.repo, version=6, rollout={"steps": [20, 50]})
    stable = event("request", "stable-5", endpoints={"default": 5, "canary": 6})
    assert collector.post(REQUEST_BODY, stable)[:2] == (200, {"status": "waiting"})
    assert collector.post(REQUEST_BODY, event("request", "v7", "canary", endpoints={"canary": 7}))[0] == 400
    # the rollout over (v6 alone, no rollout): v5's answers in flight are still taken, an older
    # version never seen is not
    route(collector.repo, version=6, rollout=None)
    assert collector.post(REQUEST_BODY, event("request", "late-5", endpoints={"default": 5}))[0] == 200
    assert collector.post(REQUEST_BODY, event("request", "old-4", endpoints={"default": 4}))[0] == 400


def test_bodies_are_bounded_in_time_and_memory(collector: Collector) -> None:
    headers = "".join(
        f"{k}: {v}\r\n" for k, v in {**event("request", "slow"), "Authorization": BASIC}.items()
    )

    def stalled(length: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", collector.port), timeout=30)
        sock.sendall(f"POST / HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {length}\r\n\r\n".encode())
        return sock

    # a body trickled a byte at a time never completes: 408 at the whole-body deadline (2 s),
    # though no single read waits long
    sock = stalled(1000)
    started = time.monotonic()
    answer = b""
    for _ in range(40):
        try:
            sock.sendall(b" ")
        except OSError:
            break
        time.sleep(0.25)
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            answer += sock.recv(65536)
        sock.setblocking(True)
        if answer:
            break
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"within 2 s" in answer, answer
    assert time.monotonic() - started < 6
    # bodies being received are bounded in all (64 MiB): four senders claiming 16 MiB each hold
    # it, a fifth is told to come back, and once they are dropped there is room again
    holders = [stalled(16 << 20) for _ in range(4)]
    time.sleep(0.3)
    status, answer, reply = collector.post(REQUEST_BODY, event("request", "busy"))
    assert (status, reply.get("Retry-After")) == (503, "1") and "busy" in answer["error"]
    for holder in holders:
        holder.close()
    deadline = time.monotonic() + 10
    while collector.post(REQUEST_BODY, event("request", "room"))[0] == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert collector.post(REQUEST_BODY, event("request", "room"))[1] == {"status": "duplicate"}
    # requests never answered are held as their raw bytes, 4 MiB in all: the oldest go first
    rss = _rss(collector)
    row = {f"f{i}": i * 0.5 for i in range(40)}
    big = json.dumps({"dataframe_records": [row] * 1800}).encode()  # ~0.9 MiB, far more once parsed
    for index in range(40):
        assert collector.post(big, event("request", f"big-{index}"))[0] == 200
    grown = _rss(collector) - rss
    assert grown < 40 << 20, f"{grown >> 20} MiB more after {40 * len(big) >> 20} MiB of requests held"
    counts = collector.health()
    assert counts["pending_bytes"] <= 4 << 20 and counts["expired"] >= 30, counts
    # connections (a thread each) are bounded too: idle ones held open leave the next one a 503
    from mlops_gitops.monitor.collect import MAX_CONNECTIONS

    idle = [socket.create_connection(("127.0.0.1", collector.port)) for _ in range(MAX_CONNECTIONS)]
    deadline = time.monotonic() + 10  # until the server has accepted them all
    while (got := collector.post(REQUEST_BODY, event("request", "one-too-many")))[0] != 503:
        assert time.monotonic() < deadline, got
        time.sleep(0.2)
    assert "too many connections" in got[1]["error"]
    for sock in idle:
        sock.close()
    deadline = time.monotonic() + 10
    while collector.post(REQUEST_BODY, event("request", "after"))[0] == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert collector.health()["status"] == "ok"


def _rss(collector: Collector) -> int:
    """The collector process's resident memory, in bytes."""
    status = Path(f"/proc/{collector.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) << 10


MALFORMED: list[tuple[str, bytes, dict[str, str]]] = [
    ("not JSON", b"{not json", {}),
    ("nested too deeply", b"[" * 100_000 + b"]" * 100_000, {}),
    ("a structured event that is a list", b"[1, 2]", {"Content-Type": "application/cloudevents+json"}),
    (
        "a structured event with bad base64",
        json.dumps({"specversion": "1.0", "id": "s", "type": "x", "data_base64": "%%%"}).encode(),
        {"Content-Type": "application/cloudevents+json"},
    ),
    ("annotations that are not JSON", json.dumps(REQUEST_BODY).encode(), {"Ce-Annotations": "{oops"}),
    ("annotations that are a list", json.dumps(REQUEST_BODY).encode(), {"Ce-Annotations": "[1]"}),
    ("a version that is not a number", json.dumps(REQUEST_BODY).encode(), {"Ce-Endpoint": "blue"}),
    ("an id of 1,000 characters", json.dumps(REQUEST_BODY).encode(), {"Ce-Id": "i" * 1000}),
    ("a request that is no table", json.dumps({"dataframe_records": 5}).encode(), {}),
    (
        "a response whose output is no tensor",
        json.dumps({"outputs": [5]}).encode(),
        {"Ce-Type": "org.kubeflow.serving.inference.response"},
    ),
    (
        "a response whose shape is words",
        json.dumps({"outputs": [{"name": "p", "shape": ["a", "b"], "data": [1]}]}).encode(),
        {"Ce-Type": "org.kubeflow.serving.inference.response"},
    ),
]


def test_a_malformed_event_gets_a_400_and_one_line(collector: Collector) -> None:
    for count, (what, body, changed) in enumerate(MALFORMED, 1):
        headers = {**event("request", uuid.uuid4().hex), **changed}
        status, answer, _ = collector.post(body, headers)  # an answer: the connection is not dropped
        assert status == 400, (what, answer)
        assert answer["error"] and "\n" not in answer["error"] and len(answer["error"]) < 400, answer
        counts = collector.health()
        assert (counts["rejected"], counts["received"]) == (count, 0), what
    assert collector.log() == []
