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

Who may send. KServe's logger carries no credential of its own: it posts to a URL, over https
with a CA it trusts, and presents no client certificate. Two fences, then:
- the network: deploy/collect/collect.yaml's NetworkPolicy admits only KServe's predictor pods;
- a token (`MLOPS_COLLECT_TOKEN` in the collector's environment): every POST must carry it, as
  `Authorization: Bearer <token>` or as HTTP Basic's password, which is what Go's HTTP client
  (the logger's) sends for a URL with user info (`http://logger:<token>@mlops-collect…`). The
  kserve target puts it there only in what it applies with kubectl, never in a rendered file.
  It keeps out the model's own container, which shares the predictor pod's network identity.
  Listening beyond loopback without a token is refused unless asked for in words.

What is taken. An event counts only for a (model, environment, version) that serves now: the
manifest's version, split or shadow, or the split the kserve target last rendered. During an
analysed rollout the manifest names only the version it promotes: an earlier version is its
stable one (the one that served before the promotion merged), and is taken too. A version that
stops serving stays accepted for `EXPIRE_S`, for the answers still in flight. A repeated ce-id
is acknowledged and not counted twice (the CloudEvents rule: id and source name an event once).
Its InferenceService, when the event names one, must be the one the kserve target renders for
that model and environment.

Bounds. A body up to 16 MiB, read whole within `body_timeout` seconds (a 408 after); at most
`IN_FLIGHT_BYTES` of bodies being read at once (a 503 with Retry-After beyond); pending halves
held as their raw bytes, at most `pending_bytes` in all (the oldest dropped first, counted);
at most `MAX_CONNECTIONS` connections open at once (a 503 beyond).

Names from an event reach a path (the log's): each is checked (a DNS label, and a model and
environment of this repository) before anything is opened. An event that cannot be used is a
400 with one line saying why; nothing is written for it.

    GET /healthz   ready, with counts (received, joined, pending, pending_bytes, duplicate,
                   rejected, unauthorized, expired)
    GET /metrics   the same counts, Prometheus text format
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from ..core import inference_log, protocols, state
from ..deploy.probe import QuietHandler
from ..deploy.reconcile import desired_of
from ..deploy.targets.kserve import ANNOTATION, rendered_routing

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
TOKEN_ENV = protocols.COLLECT_TOKEN
MAX_BODY = 16 << 20
IN_FLIGHT_BYTES = 64 << 20  # bodies being read at once, at most
PENDING_BYTES = 128 << 20  # halves waiting for their other half, at most (their raw bytes)
PENDING_LIMIT = 10_000  # and at most this many
EXPIRE_S = 300.0  # a half without its other half after this long is dropped (counted)
SEEN_LIMIT = 100_000  # joined ids remembered, to acknowledge a repeat without counting it
BODY_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 256  # open at once (each a thread); beyond, a 503 and close
_BUSY_BODY = b'{"error": "busy: too many connections (expected a retry)"}'
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class Rejected(ValueError):
    """An event that cannot be used: a 400 naming why."""


@dataclass
class Event:
    id: str
    type: str
    model: str
    environment: str
    version: int
    raw: bytes  # the body as received: parsed again when joined (a parsed body weighs many times more)
    structured: bool
    sent: str  # ce-time
    received: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.environment, self.id)

    def body(self) -> Any:
        return _data(json.loads(self.raw))[1] if self.structured else json.loads(self.raw)


def _header(headers: Any, name: str) -> str:
    return str(headers.get(name) or "")


def _data(envelope: Any) -> tuple[dict[str, str], Any]:
    """A structured CloudEvent's attributes and data."""
    if not isinstance(envelope, dict):
        raise Rejected("body: not a JSON object (expected a structured CloudEvent)")
    attributes = {k: str(v) for k, v in envelope.items() if k not in ("data", "data_base64")}
    data = envelope.get("data")
    if data is None and envelope.get("data_base64"):
        try:
            data = json.loads(base64.b64decode(str(envelope["data_base64"]), validate=True))
        except (binascii.Error, ValueError):
            raise Rejected("data_base64: not base64 of JSON (expected the inference body)") from None
    return attributes, data


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Rejected(f"body: not JSON (expected {what})") from None
    except RecursionError:
        raise Rejected(f"body: nested too deeply (expected {what})") from None


def _attributes(headers: Any, raw: bytes) -> tuple[dict[str, str], Any, bool]:
    mime = _header(headers, "Content-Type").split(";", 1)[0].strip().lower()
    if mime == "application/cloudevents+json":
        return (*_data(_json(raw, "a structured CloudEvent")), True)
    attributes = {k.lower()[3:]: str(v) for k, v in headers.items() if k.lower().startswith("ce-")}
    return attributes, _json(raw, "the inference request or response"), False


def _identity(attributes: dict[str, str]) -> tuple[str, str, int]:
    """(model, environment, version) from the annotations the kserve target renders."""
    try:
        annotations = json.loads(attributes.get("annotations") or "{}")
        endpoints = json.loads(annotations.get(f"{ANNOTATION}/endpoints") or "{}")
    except (ValueError, AttributeError, TypeError, RecursionError):
        raise Rejected("ce-annotations: not JSON (expected the InferenceService's annotations)") from None
    model = str(annotations.get(f"{ANNOTATION}/model") or "")
    environment = str(annotations.get(f"{ANNOTATION}/environment") or "")
    for what, value in (("model", model), ("environment", environment)):
        if not LABEL.match(value):
            raise Rejected(
                f"ce-annotations: {ANNOTATION}/{what} {value[:64]!r} (expected a DNS label; the "
                f"InferenceService's logger.metadataAnnotations must list {ANNOTATION}/{what})"
            )
    endpoint = attributes.get("endpoint") or "default"
    version = endpoints.get(endpoint) if isinstance(endpoints, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Rejected(
            f"ce-endpoint {endpoint[:32]}: no version in {ANNOTATION}/endpoints "
            "(expected the annotation the kserve target renders)"
        )
    service = attributes.get("inferenceservicename")
    if service and service != f"{model}-{environment}":
        raise Rejected(
            f"ce-inferenceservicename {service[:64]}: not {model}-{environment} "
            "(expected the InferenceService the kserve target renders for that model and environment)"
        )
    return model, environment, version


def parse(headers: Any, raw: bytes, routes: Routes | None = None) -> Event:
    """One CloudEvent (binary or structured mode), checked: its names, its version, its body."""
    attributes, data, structured = _attributes(headers, raw)
    for name in ("specversion", "id", "type"):
        if not attributes.get(name):
            raise Rejected(f"ce-{name}: missing (expected a CloudEvent from KServe's logger)")
    if len(attributes["id"]) > 256:
        raise Rejected("ce-id: over 256 characters (expected the request's id)")
    if attributes["type"] not in (REQUEST, RESPONSE):
        raise Rejected(f"ce-type: {attributes['type'][:80]} (expected {REQUEST} or {RESPONSE})")
    model, environment, version = _identity(attributes)
    if routes is not None:
        routes.check(model, environment, version)
    if attributes["type"] == REQUEST:
        records_of(data)  # checked now: a bad request is refused, not found bad when joined
    else:
        outputs_of(data)
    return Event(
        attributes["id"], attributes["type"], model, environment, version, raw, structured,
        attributes.get("time", ""),
    )  # fmt: skip


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
        if not isinstance(tensor, dict) or not isinstance(tensor.get("data") or [], list):
            raise Rejected("response: outputs[0] is not a tensor (expected name, shape, data)")
        data, shape = tensor.get("data") or [], tensor.get("shape") or []
        if isinstance(shape, list) and len(shape) == 2 and shape[1] != 1:
            try:
                width = int(shape[1])
            except (TypeError, ValueError):
                raise Rejected("response: outputs[0].shape is not integers") from None
            if width < 1:
                raise Rejected("response: outputs[0].shape has a width under 1")
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


def authorized(headers: Any, token: str) -> bool:
    """Whether a request carries the token: as a bearer token, or as HTTP Basic's password (what
    Go's HTTP client, KServe's logger's, sends for a URL with user info). Compared in constant
    time."""
    scheme, _, value = _header(headers, "Authorization").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, ValueError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.encode("utf-8", "replace"), token.encode())


class Routes:
    """Which versions of each (model, environment) serve now: the manifest's version, split and
    shadow, and the split the kserve target last rendered (`deploy.kserve.output_dir`: during an
    analysed rollout, the stable and the canary at its step). Files are re-read when they change;
    a version that stops serving stays accepted for `EXPIRE_S`."""

    def __init__(self, root: Path, rendered: Path):
        self.root = root
        self.rendered = rendered
        self._cache: dict[tuple[str, str], tuple[Any, set[int], int | None]] = {}
        self._last: dict[tuple[str, str, int], float] = {}
        self._lock = threading.Lock()

    def _files(self, model: str, environment: str) -> tuple[Path, Path]:
        return (
            self.root / "environments" / environment / f"{model}.yaml",
            self.rendered / environment / f"{model}.yaml",
        )

    def _read(
        self, model: str, environment: str, manifest: Path, rendered: Path
    ) -> tuple[set[int], int | None]:
        """(the versions routed, the version an analysed rollout is promoting, if one is): the
        manifest as the reconciler reads it, and the split the kserve target rendered."""
        desired = desired_of(environment, model, yaml.safe_load(manifest.read_text()) or {})
        routed = set(desired.versions)
        if rendered.is_file():
            document = yaml.safe_load(rendered.read_text()) or {}
            routed.update(
                v for v, _ in rendered_routing((document.get("metadata") or {}).get("annotations") or {})
            )
        return routed, desired.version if desired.rollout else None

    def check(self, model: str, environment: str, version: int) -> None:
        """Refuses a version that does not serve there (a Rejected naming it). During an analysed
        rollout an earlier version is its stable one, which the manifest does not name (it is the
        version that served before the promotion merged): it is taken too."""
        manifest, rendered = self._files(model, environment)
        if not manifest.is_file():
            raise Rejected(
                f"ce-annotations: {model} in {environment}: not a model and environment of this repository"
            )
        stamp = tuple(
            (p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else None for p in (manifest, rendered)
        )
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get((model, environment))
            if cached is None or cached[0] != stamp:
                try:
                    found = self._read(model, environment, manifest, rendered)
                    cached = self._cache[(model, environment)] = (stamp, *found)
                except (OSError, ValueError, TypeError, AttributeError, KeyError, yaml.YAMLError):
                    raise Rejected(f"environments/{environment}/{model}.yaml: cannot be read now") from None
            _, routed, promoting = cached
            stable = promoting is not None and version < promoting
            for served in [*routed, *([version] if stable else [])]:
                self._last[(model, environment, served)] = now
            last = self._last.get((model, environment, version))
        if last is None or now - last > EXPIRE_S:
            serving = ", ".join(f"v{v}" for v in sorted(routed)) or "nothing"
            raise Rejected(
                f"ce-annotations: {model} v{version} does not serve in {environment} "
                f"(expected a version its manifest routes: {serving})"
            )


class Collector:
    """Joins each request with its response and writes the pair to the inference log."""

    def __init__(self, root: Path, routes: Routes | None = None, pending_bytes: int = PENDING_BYTES):
        self.root = root
        self.routes = routes
        self.pending_limit = pending_bytes
        self.pending: OrderedDict[tuple[str, str, str], Event] = OrderedDict()
        self.pending_bytes = 0
        self.seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self.logs: dict[tuple[str, str], inference_log.Writer] = {}
        self.counts = dict.fromkeys(
            ("received", "joined", "duplicate", "rejected", "unauthorized", "expired"), 0
        )
        self.lock = threading.Lock()

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def take(self, headers: Any, raw: bytes) -> str:
        """Take one event; what became of it (waiting, joined, duplicate)."""
        try:
            event = parse(headers, raw, self.routes)
        except (Rejected, protocols.ProtocolError) as exc:
            self.count("rejected")
            raise Rejected(str(exc)) from None
        with self.lock:
            self.counts["received"] += 1
            self._expire()
            other = self.pending.get(event.key)
            if event.key in self.seen or (other is not None and other.type == event.type):
                self.counts["duplicate"] += 1
                return "duplicate"
            if other is None:
                self._hold(event)
                return "waiting"
            self._drop(event.key)
            self.seen[event.key] = None
            while len(self.seen) > SEEN_LIMIT:
                self.seen.popitem(last=False)
            self.counts["joined"] += 1
            request, response = (other, event) if other.type == REQUEST else (event, other)
            log = self._log(request.environment, request.model)
        entry = inference_log.entry(
            {"model": request.model, "environment": request.environment},
            request.id,
            response.version,
            "primary",
            records_of(request.body()),
            outputs_of(response.body()),
            _seconds_between(request.sent, response.sent),
        )
        log.write(entry)
        return "joined"

    def _log(self, environment: str, model: str) -> inference_log.Writer:
        log = self.logs.get((environment, model))
        if log is None:
            path = state.inference_log(self.root, environment, model)
            log = self.logs[(environment, model)] = inference_log.Writer(path)
        return log

    def _hold(self, event: Event) -> None:
        while self.pending and (
            len(self.pending) >= PENDING_LIMIT or self.pending_bytes + len(event.raw) > self.pending_limit
        ):
            self._drop(next(iter(self.pending)))
            self.counts["expired"] += 1
        self.pending[event.key] = event
        self.pending_bytes += len(event.raw)

    def _drop(self, key: tuple[str, str, str]) -> None:
        self.pending_bytes -= len(self.pending.pop(key).raw)

    def _expire(self) -> None:
        cutoff = time.monotonic() - EXPIRE_S
        while self.pending and next(iter(self.pending.values())).received < cutoff:
            self._drop(next(iter(self.pending)))
            self.counts["expired"] += 1

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {**self.counts, "pending": len(self.pending), "pending_bytes": self.pending_bytes}

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
                    {"error": f"{self.path[:200]}: not found (expected /healthz, /metrics or POST)"}
                ).encode(),
            )

    def _refuse(self, status: int, error: str, **headers: str) -> None:
        self.close_connection = True
        body = json.dumps({"error": error}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        server = self.server
        if server.token and not authorized(self.headers, server.token):
            server.collector.count("unauthorized")
            self._refuse(
                401,
                "Authorization: missing or wrong (expected the collector's token, as a bearer token or "
                "the logger URL's password)",
                WWW_Authenticate='Basic realm="mlops-collect"',
            )
            return
        header = (self.headers.get("Content-Length") or "").strip()
        length = int(header) if header.isdigit() and len(header) < 12 else -1
        if length < 0 or length > MAX_BODY:
            self._refuse(413 if length > MAX_BODY else 411, "Content-Length: expected a body up to 16 MiB")
            return
        if not server.reserve(length):
            self._refuse(503, "busy: too many bodies being received (expected a retry)", Retry_After="1")
            return
        try:
            raw = self._body(length)
        finally:
            server.release(length)
        if raw is None:
            self._refuse(
                408, f"body: not received within {server.body_timeout:g} s (expected the whole body)"
            )
            return
        try:
            what = server.collector.take(self.headers, raw)
        except Rejected as exc:
            self._send(400, json.dumps({"error": str(exc)}).encode())
            return
        self._send(200, json.dumps({"status": what}).encode())

    def _body(self, length: int) -> bytes | None:
        """The whole body, or None when it did not all come within the server's body timeout."""
        deadline = time.monotonic() + self.server.body_timeout
        chunks, left = [], length
        try:
            while left:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.connection.settimeout(min(remaining, self.timeout))
                chunk = self.rfile.read1(min(left, 1 << 20))
                if not chunk:
                    return None
                chunks.append(chunk)
                left -= len(chunk)
        except (TimeoutError, OSError):
            return None
        return b"".join(chunks)


class CollectServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        collector: Collector,
        token: str = "",
        body_timeout: float = BODY_TIMEOUT_S,
    ):
        super().__init__(address, CollectHandler)
        self.collector = collector
        self.token = token
        self.body_timeout = body_timeout
        self._in_flight = 0
        self._connections = 0
        self._flight_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        """One thread per connection, at most `MAX_CONNECTIONS` at once: beyond, a 503 and close."""
        with self._flight_lock:
            full = self._connections >= MAX_CONNECTIONS
            self._connections += 0 if full else 1
        if full:
            with contextlib.suppress(OSError):
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._flight_lock:
                self._connections -= 1

    def reserve(self, length: int) -> bool:
        """Room for one more body of `length` bytes being read (False: the bound is reached)."""
        with self._flight_lock:
            if self._in_flight and self._in_flight + length > IN_FLIGHT_BYTES:
                return False
            self._in_flight += length
            return True

    def release(self, length: int) -> None:
        with self._flight_lock:
            self._in_flight -= length
