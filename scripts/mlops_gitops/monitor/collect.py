"""`mlops collect`: KServe's inference logger, received, written as the inference log that
`mlops drift` and `mlops feedback` read, so a KServe environment is watched like a local one.

KServe's logger (`predictor.logger`, mode all; kserve/kserve pkg/logger/worker.go) posts each
request and each response as a CloudEvent in binary content mode:

    ce-specversion: 1.0            ce-id: the request's id, the same on request and response
    ce-type: org.kubeflow.serving.inference.request | org.kubeflow.serving.inference.response
    ce-source, ce-inferenceservicename, ce-namespace, ce-component, ce-endpoint (default|canary)
    ce-metadata: JSON              ce-annotations: JSON of the InferenceService annotations its
                                   logger.metadataAnnotations lists
    Content-Type: the original's   body: the original request or response, as sent

The `kserve` target renders those annotations: the model, the environment, and which version
each endpoint (default, canary) serves. Request and response are joined by ce-id, in whichever
order they come; the joined pair is one log line (request id, inputs as records, outputs,
version, time). Structured mode (application/cloudevents+json) is read too.

Names from an event reach a path (the log's): each is checked (a DNS label, and a model and
environment of this repository when it runs inside one) before anything is opened. An event
that cannot be used is a 400 with one line saying why; nothing is written for it.

    GET /healthz   ready, with counts (received, joined, pending, rejected, expired)
    GET /metrics   the same counts, Prometheus text format
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..core import inference_log, protocols, state
from ..deploy.probe import QuietHandler

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
ANNOTATION = "mlops-gitops.dev"
LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MAX_BODY = 16 << 20
PENDING_LIMIT = 10_000  # requests waiting for their response, at most
EXPIRE_S = 300.0  # a half without its other half after this long is dropped (counted)


class Rejected(ValueError):
    """An event that cannot be used: a 400 naming why."""


@dataclass
class Event:
    id: str
    type: str
    model: str
    environment: str
    version: int
    body: Any
    sent: str  # ce-time
    received: float = field(default_factory=time.monotonic)


def _header(headers: Any, name: str) -> str:
    return str(headers.get(name) or "")


def parse(headers: Any, raw: bytes, known: tuple[set[str], set[str]] | None = None) -> Event:
    """One CloudEvent (binary or structured mode), checked: its names, its version, its body."""
    mime = _header(headers, "Content-Type").split(";", 1)[0].strip().lower()
    if mime == "application/cloudevents+json":
        try:
            envelope = json.loads(raw)
        except ValueError:
            raise Rejected("body: not JSON (expected a structured CloudEvent)") from None
        attributes = {k: str(v) for k, v in envelope.items() if k not in ("data", "data_base64")}
        data = envelope.get("data")
        if data is None and envelope.get("data_base64"):
            import base64

            data = json.loads(base64.b64decode(envelope["data_base64"]))
    else:
        attributes = {k.lower()[3:]: str(v) for k, v in headers.items() if k.lower().startswith("ce-")}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise Rejected("body: not JSON (expected the inference request or response)") from None
    for name in ("specversion", "id", "type"):
        if not attributes.get(name):
            raise Rejected(f"ce-{name}: missing (expected a CloudEvent from KServe's logger)")
    if attributes["type"] not in (REQUEST, RESPONSE):
        raise Rejected(f"ce-type: {attributes['type'][:80]} (expected {REQUEST} or {RESPONSE})")
    try:
        annotations = json.loads(attributes.get("annotations") or "{}")
        endpoints = json.loads(annotations.get(f"{ANNOTATION}/endpoints") or "{}")
    except (ValueError, AttributeError):
        raise Rejected("ce-annotations: not JSON (expected the InferenceService's annotations)") from None
    model = str(annotations.get(f"{ANNOTATION}/model") or "")
    environment = str(annotations.get(f"{ANNOTATION}/environment") or "")
    for what, value in (("model", model), ("environment", environment)):
        if not LABEL.match(value):
            raise Rejected(
                f"ce-annotations: {ANNOTATION}/{what} {value[:64]!r} (expected a DNS label; the "
                f"InferenceService's logger.metadataAnnotations must list {ANNOTATION}/{what})"
            )
    if known is not None and (model not in known[0] or environment not in known[1]):
        raise Rejected(
            f"ce-annotations: {model} in {environment}: not a model and environment of this repository"
        )
    endpoint = attributes.get("endpoint") or "default"
    version = endpoints.get(endpoint) if isinstance(endpoints, dict) else None
    if not isinstance(version, int) or version < 1:
        raise Rejected(
            f"ce-endpoint {endpoint}: no version in {ANNOTATION}/endpoints "
            "(expected the annotation the kserve target renders)"
        )
    return Event(
        attributes["id"], attributes["type"], model, environment, version, data, attributes.get("time", "")
    )


def records_of(body: Any) -> list[dict[str, Any]]:
    """The request's rows: an Open Inference Protocol request, or MLflow's / KServe v1's forms."""
    if (
        isinstance(body, dict)
        and isinstance(body.get("inputs"), list)
        and body["inputs"]
        and isinstance(body["inputs"][0], dict)
        and "datatype" in body["inputs"][0]
    ):
        return protocols.v2_request(body, [])[0]
    return protocols.mlflow_json(body)


def outputs_of(body: Any) -> list[Any]:
    """The response's predictions: the first output tensor, one row per input; or v1's."""
    if isinstance(body, dict) and isinstance(body.get("outputs"), list) and body["outputs"]:
        tensor = body["outputs"][0]
        data, shape = tensor.get("data") or [], tensor.get("shape") or []
        if len(shape) == 2 and shape[1] != 1:
            width = int(shape[1])
            return [data[i : i + width] for i in range(0, len(data), width)]
        return list(data)
    if isinstance(body, dict) and isinstance(body.get("predictions"), list):
        return list(body["predictions"])
    raise Rejected("response: no outputs (expected an inference response with outputs or predictions)")


def _seconds_between(first: str, second: str) -> float:
    try:
        return max(0.0, (datetime.fromisoformat(second) - datetime.fromisoformat(first)).total_seconds())
    except ValueError:
        return 0.0


class Collector:
    """Joins each request with its response and writes the pair to the inference log."""

    def __init__(self, root: Path, known: tuple[set[str], set[str]] | None = None):
        self.root = root
        self.known = known
        self.pending: dict[str, Event] = {}
        self.logs: dict[tuple[str, str], inference_log.Writer] = {}
        self.counts = {"received": 0, "joined": 0, "rejected": 0, "expired": 0}
        self.lock = threading.Lock()

    def take(self, headers: Any, raw: bytes) -> str:
        """Take one event; what became of it (waiting, joined)."""
        try:
            event = parse(headers, raw, self.known)
            if event.type == REQUEST:
                records_of(event.body)  # checked now: a bad request is refused, not logged later
            else:
                outputs_of(event.body)
        except (Rejected, protocols.ProtocolError) as exc:
            with self.lock:
                self.counts["rejected"] += 1
            raise Rejected(str(exc)) from None
        with self.lock:
            self.counts["received"] += 1
            self._expire()
            other = self.pending.pop(event.id, None)
            if other is None or other.type == event.type:
                if len(self.pending) >= PENDING_LIMIT:
                    self.pending.pop(next(iter(self.pending)))
                    self.counts["expired"] += 1
                self.pending[event.id] = event
                return "waiting"
            request, response = (other, event) if other.type == REQUEST else (event, other)
            self.counts["joined"] += 1
            log = self.logs.get((request.environment, request.model))
            if log is None:
                path = state.inference_log(self.root, request.environment, request.model)
                log = self.logs[(request.environment, request.model)] = inference_log.Writer(path)
        entry = inference_log.entry(
            {"model": request.model, "environment": request.environment},
            request.id,
            response.version,
            "primary",
            records_of(request.body),
            outputs_of(response.body),
            _seconds_between(request.sent, response.sent),
        )
        log.write(entry)
        return "joined"

    def _expire(self) -> None:
        cutoff = time.monotonic() - EXPIRE_S
        for key in [k for k, e in self.pending.items() if e.received < cutoff]:
            del self.pending[key]
            self.counts["expired"] += 1

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {**self.counts, "pending": len(self.pending)}

    def close(self) -> None:
        for log in self.logs.values():
            log.close()


class CollectHandler(QuietHandler):
    server: CollectServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        counts = self.server.collector.snapshot()
        if self.path == "/healthz":
            self._send(200, json.dumps({"status": "ok", **counts}).encode())
        elif self.path == "/metrics":
            lines = [
                f"# TYPE mlops_collect_{name} gauge\nmlops_collect_{name} {value}"
                for name, value in sorted(counts.items())
            ]
            self._send(200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4")
        else:
            self._send(
                404,
                json.dumps(
                    {"error": f"{self.path}: not found (expected /healthz, /metrics or POST)"}
                ).encode(),
            )

    def do_POST(self) -> None:
        header = (self.headers.get("Content-Length") or "").strip()
        length = int(header) if header.isdigit() else -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send(
                413 if length > MAX_BODY else 411,
                b'{"error": "Content-Length: expected a body up to 16 MiB"}',
            )
            return
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            self._send(408, b'{"error": "body: not received in time (expected the whole body)"}')
            return
        try:
            what = self.server.collector.take(self.headers, raw)
        except Rejected as exc:
            self._send(400, json.dumps({"error": str(exc)}).encode())
            return
        self._send(200, json.dumps({"status": what}).encode())


class CollectServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], collector: Collector):
        super().__init__(address, CollectHandler)
        self.collector = collector
