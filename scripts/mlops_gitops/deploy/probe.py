"""The watching reconciler's own health and metrics (`mlops reconcile --watch --health-port`),
for systemd, a load balancer or Prometheus on a deploy host (scripts/deploy-host/).

    GET /healthz   200 while the loop is alive: its last round ended recently (within three
                   times the longest wait); 503 when it is stuck. The body says whether the
                   last round was in sync and healthy ("ok") or not ("failing": a deployment
                   failed; the loop itself is fine, retrying).
    GET /metrics   Prometheus text: rounds, failed rounds, consecutive failures, the time of
                   the last round and of the last good one, whether the last was good.

Liveness is kept apart from deployment health on purpose: restarting the reconciler never
fixes a failing model, so a failing deployment must not make the service look dead.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..core import protocols


class Probe:
    def __init__(self, stale_after: float):
        self.stale_after = stale_after
        self.started = time.time()
        self.rounds = 0
        self.failed = 0
        self.consecutive = 0
        self.last_round = 0.0
        self.last_ok = 0.0
        self.last_was_ok = False
        self.lock = threading.Lock()

    def round(self, ok: bool) -> None:
        with self.lock:
            now = time.time()
            self.rounds += 1
            self.last_round = now
            self.last_was_ok = ok
            if ok:
                self.last_ok = now
                self.consecutive = 0
            else:
                self.failed += 1
                self.consecutive += 1

    def health(self) -> tuple[int, dict[str, Any]]:
        with self.lock:
            now = time.time()
            since = now - (self.last_round or self.started)
            alive = since <= self.stale_after
            body = {
                "status": ("ok" if self.last_was_ok else "failing") if alive else "stuck",
                "rounds": self.rounds,
                "consecutive_failures": self.consecutive,
                "seconds_since_last_round": round(since, 1),
            }
            return (200 if alive else 503), body

    def metrics(self) -> str:
        with self.lock:
            values = [
                ("rounds_total", "counter", "Reconcile rounds run", self.rounds),
                ("failed_rounds_total", "counter", "Rounds with a failed deployment", self.failed),
                ("consecutive_failures", "gauge", "Failed rounds in a row", self.consecutive),
                ("last_round_timestamp_seconds", "gauge", "End of the last round", self.last_round),
                ("last_success_timestamp_seconds", "gauge", "End of the last good round", self.last_ok),
                (
                    "last_round_ok",
                    "gauge",
                    "1 when the last round was in sync and healthy",
                    int(self.last_was_ok),
                ),
            ]
        lines = []
        for name, kind, text, value in values:
            lines += [
                f"# HELP mlops_reconcile_{name} {text}",
                f"# TYPE mlops_reconcile_{name} {kind}",
                f"mlops_reconcile_{name} {value}",
            ]
        return "\n".join(lines) + "\n"


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that answers whole bodies and keeps no access log (the probe's, the collector's):
    a stalled client is dropped after `timeout`, a method other than GET/POST gets 405."""

    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        return

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_TRACE = do_CONNECT = protocols.not_allowed

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Handler(QuietHandler):
    server: ProbeServer

    def do_GET(self) -> None:
        probe = self.server.probe
        if self.path == "/healthz":
            status, body = probe.health()
            self._send(status, json.dumps(body).encode(), "application/json")
        elif self.path == "/metrics":
            self._send(200, probe.metrics().encode(), "text/plain; version=0.0.4")
        else:
            self._send(404, b'{"error": "expected /healthz or /metrics"}', "application/json")


class ProbeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], probe: Probe):
        super().__init__(address, _Handler)
        self.probe = probe


def serve(host: str, port: int, probe: Probe) -> ProbeServer:
    """Start answering in a background thread; the server (its port is server_address[1])."""
    server = ProbeServer((host, port), probe)
    threading.Thread(target=server.serve_forever, name="probe", daemon=True).start()
    return server
