"""What the local target trusts and what reaches its servers: ports found free, pinned or taken;
clients sending bad, slow or hostile requests; a look-alike on the server's port never sent the
token nor signaled. Real processes, real sockets."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from ..conftest import git_commit_all, run_mlops
from .helpers import aliases, example, http, records, served_repo, set_manifest, url_of, v2_infer
from .mlflow_server import free_port

__all__ = ["served_repo"]  # the fixture `repo`: a copy of the registered repository

pytestmark = pytest.mark.slow


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


def test_every_parser_refuses_what_it_cannot_take_with_a_400_and_one_line(repo: Path, tmp_path: Path) -> None:
    """An oversized CSV field, column names that are not strings, a column or tensor named twice:
    each a 400 naming the place, never a 500 or a dropped connection; a labels file with a label
    no number holds is one line from `mlops compare`, and changes nothing."""
    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    url, good = url_of(repo), example(repo)[0]
    header = ",".join(good)
    line = ",".join(str(v) for v in good.values())
    csv_cases = {
        f"{header}\n{line[: line.rindex(',')]},{'x' * 200_000}\n": "field larger than field limit",
        f"{header},{next(iter(good))}\n{line},1\n": "named twice",
    }
    for text, said in csv_cases.items():
        status, answer = http(
            "POST", f"{url}/invocations", raw=text.encode(), headers={"Content-Type": "text/csv"}
        )
        assert status == 400 and said in answer["message"] and "\n" not in answer["message"], answer
    columns = list(good)
    for split, said in (
        ({"columns": list(range(len(columns))), "data": [list(good.values())]}, "column names (strings)"),
        ({"columns": [*columns, columns[0]], "data": [[*good.values(), good[columns[0]]]]}, "named twice"),
    ):
        status, answer = http("POST", f"{url}/invocations", {"dataframe_split": split})
        assert status == 400 and said in answer["message"], answer
    twice = v2_infer(good, "x")
    twice["inputs"].append(twice["inputs"][0])
    status, answer = http("POST", f"{url}/v2/models/churn/infer", twice)
    assert status == 400 and "named twice" in answer["error"], answer
    assert http("POST", f"{url}/predict", {"dataframe_records": [good]})[0] == 200  # still serving
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\nr1," + "9" * 400 + "\n")
    proc = run_mlops("compare", "churn", "--env", "staging", "--labels", str(labels), cwd=repo)
    (said,) = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "record 1:" in said and "expected request_id and a numeric label" in said


def test_nothing_a_client_sends_reaches_a_response_header_raw(repo: Path) -> None:
    """nginx's and Envoy's header hygiene: a request id with CR/LF in it (response splitting), one
    of 10,000 characters, or one with characters no header can carry is never echoed: the server
    answers 200 under an id of its own, one response, no header the client wrote. A good id is
    kept, in the header, the body and the inference log."""
    from mlops_gitops.core import state

    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    url, good = url_of(repo), example(repo)[0]
    body = json.dumps({"dataframe_records": [good]}).encode()
    injected = "abc\r\nSet-Cookie: session=stolen\r\n\r\n<html>owned</html>"
    offered = {
        "body-id-crlf": b"",
        "header-long": b"X-Request-Id: " + b"a" * 10_000,
        "header-latin-1": "X-Request-Id: caf\u00e9".encode("latin-1"),
    }
    for name, header in offered.items():
        if name == "body-id-crlf":  # CR/LF cannot travel in a header line: it is the v2 body's id
            request = json.dumps(v2_infer(good, injected)).encode()
            path = "/v2/models/churn/infer"
        else:
            request, path = body, "/predict"
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
        extra = header + b"\r\n" if header else b""
        reply = raw_exchange(
            url,
            head + extra + f"Content-Length: {len(request)}\r\nConnection: close\r\n\r\n".encode() + request,
        )
        status, _, rest = reply.partition(b"\r\n")
        headers = rest.split(b"\r\n\r\n", 1)[0]
        assert status.startswith(b"HTTP/1.1 200"), (name, reply[:300])
        assert b"Set-Cookie" not in headers and reply.count(b"HTTP/1.1") == 1, (name, reply[:500])
        echoed = re.search(rb"X-Request-Id: ([^\r]*)", headers)
        assert echoed and re.fullmatch(rb"[0-9a-f]{32}", echoed.group(1)), (name, headers)  # the server's own
    status, answer = http("POST", f"{url}/v2/models/churn/infer", v2_infer(good, "\u65e5\u672c\u8a9e"))
    assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", answer["id"]), answer  # not a dropped connection
    status, answer = http(
        "POST", f"{url}/predict", {"dataframe_records": [good]}, headers={"X-Request-Id": "ok-42"}
    )
    assert status == 200 and answer["request_id"] == "ok-42"
    # the server writes its log after the answer (off the request's critical path): wait for it
    path, deadline = state.inference_log(repo, "staging", "churn"), time.monotonic() + 10
    while "ok-42" not in path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = path.read_text()
    assert "ok-42" in log and "Set-Cookie" not in log


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
