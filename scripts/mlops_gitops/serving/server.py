"""The model server the `local` target runs: one process per (environment, model).

    GET  /health     200 when every version it serves is loaded and answered its smoke
                     prediction, else 503 (readiness); the body says which versions run,
                     and answers an X-Mlops-Challenge with its proof of identity.
    GET  /metadata   model, environment, versions, traffic split, shadow, lineage tags.
    GET  /metrics    Prometheus' text format: requests and errors by status, latency, batch
                     rows, in-flight requests, each version's time since load (servemetrics.py).
    POST /predict    {"dataframe_records": [...]} (MLflow's format), {"instances": [...]}
                     or a bare list of records; a batch is a list. Answers
                     {"predictions": [...], "version": N, "request_id": "..."}.
    POST /invocations, GET /ping, /version: MLflow's scoring protocol, as `mlflow models serve`
    /v2/...          the Open Inference Protocol, as KServe's MLflow runtime (protocols.py)
    POST /-/reload   (the reconciler; needs the token from the state directory) a new
                     spec: the new versions are loaded and smoke-tested beside the old ones,
                     then swapped in at once. A failure leaves the old ones serving. For
                     MLOPS_PROBATION_S after a switch the old ones stay loaded: a request a new
                     version fails is answered by them, and /health counts it against it.

Every route goes the same way: decoded to records, checked, routed (canary split, shadow),
predicted, logged. Requests are checked against the model's signature: a missing, unknown or mistyped field
is a 400 naming it, never a 500; bodies over the limit are refused with 413 before they
are read. Every answered request is logged (request id, inputs, outputs, version, time)
to a JSON-lines inference log that drift and feedback read; a shadow version gets a copy
of each request off the request path, and its answers are logged, never returned.
"""

from __future__ import annotations

import argparse
import collections
import hmac
import json
import math
import os
import random
import re
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..core import inference_log, protocols, redact
from . import metrics as servemetrics

MAX_BODY = int(os.environ.get("MLOPS_SERVE_MAX_BODY", str(1 << 20)))
DISCARD_LIMIT = 16 * MAX_BODY  # oversized bodies up to this size are read and dropped before the 413
MAX_ROWS = 10_000
# Seconds a whole body may take to arrive once its headers are in (a short body gets a 408).
BODY_TIMEOUT = float(os.environ.get("MLOPS_SERVE_BODY_TIMEOUT", "10"))
INT_RANGES = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# MLflow DataType name -> (accepts, description)
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if _is_int(value):
        return bool(abs(value) <= sys.float_info.max)  # an integer a float can hold
    return isinstance(value, float) and math.isfinite(value)


def _in_range(kind: str) -> Any:
    low, high = INT_RANGES[kind]
    return lambda value: _is_int(value) and low <= value <= high


CHECKS: dict[str, tuple[Any, str]] = {
    "long": (_in_range("long"), "an integer within 64 bits"),
    "integer": (_in_range("integer"), "an integer within 32 bits"),
    "double": (_is_number, "a number"),
    "float": (_is_number, "a number"),
    "string": (lambda v: isinstance(v, str), "a string"),
    "boolean": (lambda v: isinstance(v, bool), "true or false"),
}


class Batcher:
    """Concurrent requests to one version share one predict call.

    A scikit-learn pipeline spends most of a one-row prediction on per-call overhead, so rows
    that arrive while a prediction runs are predicted together next, and the answers split
    back. Nothing waits on purpose: a lone request (nothing running, nothing queued) is
    predicted at once in its own thread, with no hand-over to the batch thread and back. If a
    batch fails, each request is predicted alone, so an error reaches only the request that
    caused it.
    """

    def __init__(self, predict: Any, max_rows: int = 256):
        self._predict = predict
        self._max_rows = max_rows
        self._waiting: collections.deque[_Pending] = collections.deque()
        self._changed = threading.Condition()
        self._closed = False
        self._running = 0  # predictions running now, alone or in a batch
        threading.Thread(target=self._run, daemon=True, name="batcher").start()

    def predict(self, records: list[dict[str, Any]]) -> list[Any]:
        pending = _Pending(records)
        with self._changed:  # alone (or after close()): predicted here; else it waits its batch
            alone = self._closed or (self._running == 0 and not self._waiting)
            if alone:
                self._running += 1
            else:
                self._waiting.append(pending)
                self._changed.notify_all()
        if alone:
            try:
                result: list[Any] = self._predict(records)
                return result
            finally:
                self._finished()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def close(self) -> None:
        """Let the thread (and the model it holds) go once what is queued is answered."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _finished(self) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                # the next batch: whatever waits once the running prediction is done
                self._changed.wait_for(lambda: (self._waiting and self._running == 0) or self._closed)
                if not self._waiting:
                    return  # closed, nothing left
                batch: list[_Pending] = []
                rows = 0
                while self._waiting and (not batch or rows < self._max_rows):
                    item = self._waiting.popleft()
                    batch.append(item)
                    rows += len(item.records)
                self._running += 1
            try:
                self._answer(batch)
            finally:
                self._finished()

    def _answer(self, batch: list[_Pending]) -> None:
        try:
            outputs = self._predict([row for item in batch for row in item.records])
            start = 0
            for item in batch:
                item.result = outputs[start : start + len(item.records)]
                start += len(item.records)
        except Exception:
            for item in batch:
                try:
                    item.result = self._predict(item.records)
                except Exception as exc:
                    item.error = exc
        for item in batch:
            item.done.set()


@dataclass
class _Pending:
    records: list[dict[str, Any]]
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Any] = field(default_factory=list)
    error: Exception | None = None


@dataclass
class Loaded:
    """One model version in memory, with what a request is checked against."""

    version: int
    path: str
    model: Any
    columns: list[tuple[str, str]]  # (name, MLflow type name) in signature order
    example: list[dict[str, Any]]
    tags: dict[str, str] = field(default_factory=dict)
    batcher: Batcher | None = None  # set once the version passed its smoke test
    width: int = 1  # values per prediction (a classifier's scores), seen in the smoke test

    def frame(self, records: list[dict[str, Any]]) -> Any:
        import pandas as pd

        return pd.DataFrame.from_records(records, columns=[name for name, _ in self.columns])

    def serve(self, records: list[dict[str, Any]]) -> list[Any]:
        """A request's prediction, batched with the requests that arrive beside it."""
        return self.batcher.predict(records) if self.batcher is not None else self.predict(records)

    def predict(self, records: list[dict[str, Any]]) -> list[Any]:
        result = self.model.predict(self.frame(records))
        if hasattr(result, "tolist"):
            out: list[Any] = result.tolist()
            return out
        return list(result)


def load_version(version: int, path: str, fallback: list[dict[str, Any]] | None = None) -> Loaded:
    """Load a model directory (already verified by the reconciler) and smoke-test it on its
    input example, or on `fallback` (another version's) when it was logged without one."""
    import mlflow.pyfunc

    # MLflow's own check of the model's requirements maps every installed package to its modules
    # first (half a second of each server's start); the same warnings, from the pins alone.
    for warning in requirement_mismatches(Path(path)):
        print(f"warning: v{version}: {warning}", file=sys.stderr, flush=True)
    model = mlflow.pyfunc.load_model(path, suppress_warnings=True)
    columns = protocols.columns_of(model.metadata.get_input_schema())
    if not columns:
        raise RuntimeError(f"v{version}: the model has no named input signature (expected columns)")
    example = protocols.input_example(Path(path))
    tags_file = Path(path).parent / "mlops-version.json"
    tags = json.loads(tags_file.read_text()) if tags_file.exists() else {}
    loaded = Loaded(version, path, model, columns, example, tags)
    smoke = example or fallback or []
    if not smoke:
        raise RuntimeError(
            f"v{version}: no input example to smoke-test it on (expected one logged with the model)"
        )
    try:
        first = loaded.predict(smoke[:1])[0]
        loaded.width = len(first) if isinstance(first, list) else 1
    except Exception as exc:
        raise RuntimeError(
            f"v{version}: smoke prediction on the input example failed: {type(exc).__name__}: {exc}"
        ) from None
    loaded.batcher = Batcher(loaded.predict)
    return loaded


def requirement_mismatches(path: Path) -> list[str]:
    """What MLflow warns of when it loads a model, in its words: each requirement of the model's
    requirements.txt that this environment does not satisfy (`name (current: X, required: R)`),
    and another Python minor version than the model was logged with."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import Version

    found = []
    listed = path / "requirements.txt"
    for given in listed.read_text().splitlines() if listed.is_file() else []:
        line = re.sub(r"(^|\s)#.*$", "", given).strip()  # pip's comments, as MLflow strips them
        try:
            wanted = Requirement(line)
        except InvalidRequirement:
            continue  # a comment, an option (-r, --index-url), a path or a URL: MLflow skips them
        if wanted.marker and not wanted.marker.evaluate():
            continue
        try:
            have = installed(wanted.name)
        except PackageNotFoundError:
            found.append(f"{wanted.name} (current: uninstalled, required: {line})")
            continue
        if wanted.name == "mlflow" and Version(have).is_devrelease:
            continue
        if wanted.specifier and not wanted.specifier.contains(have):
            found.append(f"{wanted.name} (current: {have}, required: {line})")
    from mlflow.models import Model

    flavor = Model.load(str(path)).flavors.get("python_function") or {}
    logged = str(flavor.get("python_version") or "")
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if logged and ".".join(logged.split(".")[:2]) != running:
        found.append(f"the model was logged with Python {logged}, this server runs Python {running}")
    return found


@dataclass(frozen=True)
class Routing:
    """What is served now: weighted primaries and an optional shadow. Replaced whole, never edited."""

    primaries: tuple[tuple[Loaded, int], ...]
    shadow: Loaded | None
    spec: dict[str, Any]
    # on probation: the routing this one replaced answers what a new version fails, until then.
    # A request keeps the routing it started on, so one in flight when the reconciler switches
    # back is still answered by the fallback, not failed because the probation just ended.
    fallback: Routing | None = None
    probation_until: float = 0.0

    def pick(self) -> Loaded:
        if len(self.primaries) == 1:
            return self.primaries[0][0]
        roll = random.uniform(0, 100)
        for loaded, percent in self.primaries:
            roll -= percent
            if roll < 0:
                return loaded
        return self.primaries[-1][0]

    @property
    def columns(self) -> list[tuple[str, str]]:
        return self.primaries[0][0].columns


def check_records(body: Any, columns: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The request's records, or BadRequest naming the first field that is wrong."""
    if isinstance(body, dict):
        keys = [k for k in ("dataframe_records", "instances", "inputs") if k in body]
        if len(keys) != 1:
            raise BadRequest(
                'body: expected {"dataframe_records": [...]}, {"instances": [...]} or a list of records'
            )
        records = body[keys[0]]
    else:
        records = body
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list) or not records:
        raise BadRequest("body: expected a non-empty list of records (objects of column: value)")
    if len(records) > MAX_ROWS:
        raise BadRequest(f"body: {len(records)} records (expected at most {MAX_ROWS} per request)", 413)
    expected = {name: kind for name, kind in columns}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise BadRequest(f"records[{index}]: expected an object of column: value")
        for name, kind in columns:
            if name not in record or record[name] is None:
                raise BadRequest(
                    f"records[{index}].{name}: missing (expected {CHECKS.get(kind, (None, kind))[1]})"
                )
            accepts, description = CHECKS.get(kind, (lambda v: True, kind))
            if not accepts(record[name]):
                raise BadRequest(
                    f"records[{index}].{name}: {json.dumps(record[name])[:40]} (expected {description})"
                )
        unknown = sorted(set(record) - set(expected))
        if unknown:
            raise BadRequest(
                f"records[{index}].{unknown[0]}: unknown field (expected one of {', '.join(expected)})"
            )
    return records


PROBATION_S = float(os.environ.get("MLOPS_PROBATION_S", "300"))
# MLOPS_SERVE_METRICS=0 turns /metrics off (a 404) and its counting with it: the benchmark's
# reference, and a way out for whoever scrapes the inference log instead.
METRICS_ON = os.environ.get("MLOPS_SERVE_METRICS", "1") != "0"


def _loaded_of(routing: Routing | None) -> list[Loaded]:
    if routing is None:
        return []
    return [v for v, _ in routing.primaries] + ([routing.shadow] if routing.shadow else [])


def _versions(routing: Routing | None) -> set[int]:
    return {v.version for v in _loaded_of(routing)}


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], spec: dict[str, Any], token: str):
        super().__init__(address, Handler)
        self.spec = spec
        self.token = token
        self.routing: Routing | None = None
        self.error: str | None = None
        self.cache: dict[tuple[int, str], Loaded] = {}
        self.log = inference_log.Writer(Path(spec["log"]) if spec.get("log") else None)
        self.metrics = servemetrics.ServerMetrics(str(spec.get("model")), str(spec.get("environment")))
        self.shadow_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="shadow")
        self._reload_lock = threading.Lock()
        self.started = inference_log.now()
        # Probation: for PROBATION_S after a switch, a request that fails on a version the
        # previous routing did not serve is answered by the previous routing (Routing.fallback),
        # and counted against the new version (/health says how often): clients see no error
        # while the reconciler finds out and switches back.
        self.probation_failures: dict[int, int] = {}
        self._failures_lock = threading.Lock()

    def build(self, spec: dict[str, Any], keep: Routing | None = None) -> Routing:
        """Load (or reuse) every version the spec names; raise on the first that fails. The
        versions of `keep` (the routing being replaced) stay loaded: the probation's fallback,
        and an instant switch back."""
        loaded: dict[tuple[int, str], Loaded] = {}
        for entry in [*spec["primary"], *([spec["shadow"]] if spec.get("shadow") else [])]:
            key = (int(entry["version"]), str(entry["path"]))
            if key not in loaded:
                # a version logged without an example is smoke-tested on another's (same model)
                examples = (v.example for v in [*self.cache.values(), *loaded.values()] if v.example)
                loaded[key] = self.cache.get(key) or load_version(*key, fallback=next(examples, None))
        primaries = tuple(
            (loaded[(int(e["version"]), str(e["path"]))], int(e.get("percent", 100))) for e in spec["primary"]
        )
        shadow = spec.get("shadow")
        routing = Routing(
            primaries, loaded[(int(shadow["version"]), str(shadow["path"]))] if shadow else None, spec
        )
        for other, _ in primaries[1:]:
            if other.columns != routing.columns:
                raise RuntimeError(
                    f"v{other.version}: its signature differs from v{primaries[0][0].version} "
                    "(expected one input schema for a canary split)"
                )
        kept = dict(loaded)
        for version in _loaded_of(keep):
            kept.setdefault((version.version, version.path), version)
        for key, released in self.cache.items():  # keep only what serves now, and what just did
            if key not in kept and released.batcher is not None:
                released.batcher.close()
        self.cache = kept
        return routing

    def apply(self, spec: dict[str, Any]) -> None:
        with self._reload_lock:
            old = self.routing
            routing = self._with_probation(self.build(spec, keep=old), old)
            self.routing = routing  # one assignment: requests see the old or the new, never half
            self.metrics.serving(_versions(routing))
            self.spec = spec
            self.error = None

    def _with_probation(self, routing: Routing, old: Routing | None) -> Routing:
        """`routing` with its probation: a new version's starts, with the routing it replaces as
        the fallback; a canary's next step (the same versions) carries the probation on; the
        first routing, or a switch back to the fallback's versions, has none."""
        now = _versions(routing)
        if old is None or (old.fallback and now <= _versions(old.fallback)):
            return routing
        if not now - _versions(old):
            return replace(routing, fallback=old.fallback, probation_until=old.probation_until)
        with self._failures_lock:
            self.probation_failures = {}
        return replace(
            routing, fallback=replace(old, fallback=None), probation_until=time.monotonic() + PROBATION_S
        )

    def fallback(self, routing: Routing, failed: Loaded) -> Loaded | None:
        """What answers instead of `failed` during `routing`'s probation (counting the failure
        against it): the previous routing's pick, when `failed` is new since the switch; else None."""
        previous = routing.fallback
        if previous is None or time.monotonic() > routing.probation_until:
            return None
        if failed.version in _versions(previous):
            return None
        with self._failures_lock:
            self.probation_failures[failed.version] = self.probation_failures.get(failed.version, 0) + 1
        return previous.pick()

    def probation(self) -> dict[str, Any] | None:
        """/health's view of the probation: its time left, the versions it falls back to, and
        how many requests each new version failed (answered by the previous ones)."""
        routing = self.routing
        if routing is None or routing.fallback is None:
            return None
        left = routing.probation_until - time.monotonic()
        if left <= 0:
            return None
        with self._failures_lock:
            failed = {str(v): n for v, n in sorted(self.probation_failures.items())}
        return {
            "seconds_left": round(left, 1),
            "fallback": [{"version": v.version, "percent": p} for v, p in routing.fallback.primaries],
            "failed_requests": failed,
        }

    def versions(self) -> list[int]:
        return [loaded.version for loaded, _ in self.routing.primaries] if self.routing else []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold the body back ~40 ms on every keep-alive request.
    disable_nagle_algorithm = True
    server: ModelServer
    server_version = "mlops-serve"
    _answered: tuple[int, int | None] = (500, None)  # (status, version) of the answer sent
    _rows = 0
    timeout = 60  # seconds a connection may sit idle or stall mid-body before it is closed

    def log_message(self, format: str, *args: Any) -> None:  # access log off: the inference log is the record
        return

    def _send(
        self, status: int, payload: Any, request_id: str | None = None, version: int | None = None
    ) -> None:
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self._answered = (status, version)  # what /metrics counts for this request
        if request_id:
            self.send_header("X-Request-Id", request_id)
        if version is not None:  # which version answered, on every protocol (a canary's clients can tell)
            self.send_header("X-Model-Version", str(version))
        self.end_headers()
        self.wfile.write(body)

    def _discard(self, length: int) -> None:
        """Read and drop an oversized body, up to a bound, before answering 413.

        Closing with unread bytes in the socket makes the kernel send a reset, and a client
        still writing its body then sees a broken pipe instead of the 413 (what nginx's
        lingering close avoids). Bodies beyond DISCARD_LIMIT are not drained: the connection
        just closes.
        """
        if length > DISCARD_LIMIT:
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                return
            length -= len(chunk)

    def _raw(self) -> bytes:
        """The request's body, bounded: a missing, bad or oversized Content-Length is refused
        before anything is read."""
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            raise BadRequest("Content-Length: missing (expected the size of the body)", 411)
        if not length_header.strip().isdigit():  # negative, signed, hex, empty: never read by it
            self.close_connection = True
            raise BadRequest(
                f"Content-Length: {length_header.strip()[:20]!r} (expected a whole number of bytes)", 400
            )
        length = int(length_header)
        if length > MAX_BODY:
            self.close_connection = True
            self._discard(length)
            raise BadRequest(f"body: {length} bytes (expected at most {MAX_BODY})", 413)
        return self._read_body(length)

    def _read_body(self, length: int) -> bytes:
        """Exactly `length` bytes within BODY_TIMEOUT, or 408 (a body shorter than its
        Content-Length must not hold a thread until the idle timeout)."""
        deadline = time.monotonic() + BODY_TIMEOUT
        parts: list[bytes] = []
        got = 0
        try:
            while got < length:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                chunk = self.rfile.read1(length - got)
                if not chunk:
                    self.close_connection = True
                    raise BadRequest(f"body: {got} of {length} bytes, then the client closed", 400)
                parts.append(chunk)
                got += len(chunk)
        except TimeoutError:
            self.close_connection = True
            raise BadRequest(
                f"body: {got} of {length} bytes in {BODY_TIMEOUT:g} s (expected the whole body)", 408
            ) from None
        finally:
            self.connection.settimeout(self.timeout)
        return b"".join(parts)

    def _body(self) -> Any:
        raw = self._raw()
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"body: not JSON ({exc})") from None
        except RecursionError:
            raise BadRequest("body: JSON nested too deep (expected records of column: value)") from None

    def _v2_model(self, name: str, version: str | None) -> Loaded | None:
        """The version a v2 path names (any served one when it names none); 404 otherwise. The
        model answers to its own name and to `<model>-<environment>` (its InferenceService's
        name under KServe), so one client works against both targets."""
        server = self.server
        own = str(server.spec.get("model"))
        if name not in (own, f"{own}-{server.spec.get('environment')}"):
            raise BadRequest(f"model {name}: not found (expected {own})", 404)
        routing = server.routing
        if routing is None:
            raise BadRequest(server.error or "loading", 503)
        if version is None:
            return None
        found = next((v for v, _ in routing.primaries if str(v.version) == version), None)
        if found is None:
            raise BadRequest(
                f"model {name} version {version}: not served (expected one of {server.versions()})", 404
            )
        return found

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_TRACE = do_CONNECT = protocols.not_allowed

    def do_GET(self) -> None:
        try:
            self._get()
        except BadRequest as exc:
            self._send(exc.status, {"error": str(exc)})

    def _get(self) -> None:
        server = self.server
        routing = server.routing
        path = self.path.split("?", 1)[0]
        match = protocols.V2_PATH.match(path)
        if path == "/health":
            self._send(
                200 if routing is not None else 503,
                {
                    "status": "ready" if routing is not None else ("failed" if server.error else "loading"),
                    "model": server.spec.get("model"),
                    "environment": server.spec.get("environment"),
                    "versions": server.versions(),
                    "traffic": [{"version": v.version, "percent": p} for v, p in routing.primaries]
                    if routing
                    else [],
                    "shadow": routing.shadow.version if routing and routing.shadow else None,
                    "error": server.error,
                    "since": server.started,
                    "pid": os.getpid(),
                    "probation": server.probation(),
                    **self._proof(),
                },
            )
        elif path in (
            "/ping",
            "/v2/health/ready",
        ):  # readiness, as MLflow's and the v2 protocol's clients ask
            self._send(
                200 if routing is not None else 503,
                {} if routing is not None else {"error": server.error or "loading"},
            )
        elif path == "/v2/health/live":
            self._send(200, {})
        elif path == "/version":
            self._send_text(200, mlflow_version())
        elif path == "/metrics" and METRICS_ON:
            body, content_type = server.metrics.exposition()
            self._send_text(200, body.decode(), content_type)
        elif path == "/v2":
            self._send(200, {"name": "mlops-serve", "version": mlflow_version(), "extensions": []})
        elif match and match.group("rest") != "/infer":
            chosen = self._v2_model(match.group("name"), match.group("version"))
            assert routing is not None
            if match.group("rest") == "/ready":
                self._send(200, {"name": match.group("name"), "ready": True})
            else:
                served = [chosen.version] if chosen else server.versions()
                self._send(
                    200,
                    protocols.v2_metadata(
                        match.group("name"), served, routing.columns, routing.primaries[0][0].width
                    ),
                )
        elif path == "/metadata":
            if routing is None:
                self._send(503, {"error": server.error or "loading"})
                return
            self._send(
                200,
                {
                    "model": server.spec.get("model"),
                    "environment": server.spec.get("environment"),
                    "traffic": [{"version": v.version, "percent": p} for v, p in routing.primaries],
                    "shadow": routing.shadow.version if routing.shadow else None,
                    "inputs": [{"name": n, "type": t} for n, t in routing.columns],
                    "lineage": {str(v.version): v.tags for v, _ in routing.primaries},
                },
            )
        else:
            raise BadRequest(
                f"{path}: not found (expected /health, /metadata, /ping, /version or /v2/...)", 404
            )

    def _send_text(self, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        match = protocols.V2_PATH.match(path)
        route = "predict" if path == "/predict" else ("mlflow" if path == "/invocations" else "v2")
        inference = path in ("/predict", "/invocations") or bool(match and match.group("rest") == "/infer")
        counted = METRICS_ON and inference
        metrics = self.server.metrics
        self._answered, self._rows, self._pinned = (500, None), 0, False
        if counted:
            metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            if path == "/-/reload":
                self._reload()
            elif inference:
                pinned = self._v2_model(match.group("name"), match.group("version")) if match else None
                self._predict(route, pinned)
            else:
                self._raw()
                raise BadRequest(
                    f"{path}: not found (expected /predict, /invocations or /v2/models/<name>/infer)", 404
                )
        except (BadRequest, protocols.ProtocolError) as exc:
            status = exc.status if isinstance(exc, BadRequest) else 400
            self._send(status, protocols.error_body(str(exc), route))
        finally:
            if counted:
                metrics.in_flight.dec()
                code, version = self._answered
                if not self.headers.get("X-Mlops-Version"):  # the reconciler's smoke test is not traffic
                    metrics.observe(version, route, code, time.perf_counter() - started, self._rows)

    def _predict(self, route: str, pinned: Loaded | None = None) -> None:
        server = self.server
        raw = self._raw()
        routing = server.routing
        if routing is None:
            self._send(503, protocols.error_body(server.error or "loading", route))
            return
        self._pinned = pinned is not None
        decoded, client_id = protocols.decode(route, raw, self.headers, routing.columns)
        records = check_records(decoded, routing.columns)
        self._rows = len(records)
        request_id = protocols.request_id(client_id, self.headers.get("X-Request-Id"))
        forced = self.headers.get("X-Mlops-Version")
        chosen = self._forced(routing, forced) if forced is not None else (pinned or routing.pick())
        started = time.perf_counter()
        try:
            predictions = chosen.serve(records)
        except Exception as exc:  # the model failed on valid input: the server is fine, say so
            error = f"v{chosen.version}: prediction failed: {type(exc).__name__}: {exc}"
            instead = server.fallback(routing, chosen) if forced is None and pinned is None else None
            try:
                if instead is None:
                    raise
                # probation: the previous version answers; the failure is the new one's, logged
                self._log(routing, request_id, chosen.version, records, [], 0.0, error)
                chosen, predictions = instead, instead.serve(records)
            except Exception:
                self._send(500, protocols.error_body(error, route), request_id, chosen.version)
                if forced is None:  # a failed request is traffic: the rollout analysis counts it
                    self._log(routing, request_id, chosen.version, records, [], 0.0, error)
                return
        latency = time.perf_counter() - started
        if route == "mlflow":
            answer: Any = {"predictions": predictions}
        elif route == "v2":
            answer = protocols.v2_response(
                str(server.spec.get("model")), chosen.version, request_id, predictions
            )
        else:
            answer = {"predictions": predictions, "version": chosen.version, "request_id": request_id}
        self._send(200, answer, request_id, chosen.version)
        if forced is None:
            self._log(routing, request_id, chosen.version, records, predictions, latency)
            if routing.shadow is not None:
                server.shadow_pool.submit(_shadow, server, routing.shadow, routing.spec, records, request_id)

    def _forced(self, routing: Routing, forced: str) -> Loaded:
        """The version the reconciler's smoke test names (X-Mlops-Version, with its token): not
        traffic, so neither logged nor shadowed."""
        if not self._token_ok():
            raise BadRequest("X-Mlops-Version: needs the reconciler's X-Mlops-Token", 403)
        candidates = [v for v, _ in routing.primaries] + ([routing.shadow] if routing.shadow else [])
        found = next((v for v in candidates if str(v.version) == forced), None)
        if found is None:
            raise BadRequest(
                f"X-Mlops-Version: {forced} is not served here (expected one of {self.server.versions()})"
            )
        return found

    def _log(
        self,
        routing: Routing,
        request_id: str,
        version: int,
        records: list[dict[str, Any]],
        outputs: Any,
        seconds: float,
        error: str | None = None,
    ) -> None:
        role = "pinned" if self._pinned else "primary"  # a pinned request is not the split's traffic
        entry = inference_log.entry(
            routing.spec, request_id, version, role, records, outputs, seconds, error, self.client_address[0]
        )
        self.server.log.write(entry)

    def _proof(self) -> dict[str, str]:
        """The answer to the reconciler's challenge (X-Mlops-Challenge): an HMAC of it under the
        token, which only the server started with that token can compute. The token itself never
        leaves the reconciler for a server that has not proven this."""
        challenge = self.headers.get("X-Mlops-Challenge", "")
        if not protocols.CHALLENGE.match(challenge):
            return {}
        model, env = str(self.server.spec.get("model")), str(self.server.spec.get("environment"))
        return {"proof": protocols.identity_proof(self.server.token, challenge, model, env, os.getpid())}

    def _token_ok(self) -> bool:
        return hmac.compare_digest(self.headers.get("X-Mlops-Token", "").encode(), self.server.token.encode())

    def _reload(self) -> None:
        server = self.server
        if not self._token_ok():
            self._raw()
            self._send(403, {"error": "X-Mlops-Token: wrong or missing (expected the reconciler's token)"})
            return
        spec = self._body()
        try:
            server.apply(spec)
        except Exception as exc:
            self._send(422, {"error": str(exc), "versions": server.versions()})
            return
        self._send(200, {"versions": server.versions()})


def mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow")


def _shadow(
    server: ModelServer, shadow: Loaded, spec: dict[str, Any], records: list[dict[str, Any]], request_id: str
) -> None:
    started = time.perf_counter()
    try:
        outputs: Any = shadow.serve(records)
        error = None
    except Exception as exc:
        outputs, error = None, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    server.log.write(
        inference_log.entry(spec, request_id, shadow.version, "shadow", records, outputs, seconds, error)
    )


def spec_for(repo: Any, registry: Any, model: str, version: str | None, env: str) -> dict[str, Any]:
    """What `mlops serve` runs in the foreground: one verified version (by number or alias; by
    default the one ENV's manifest names, else its alias), logging to ENV's inference log."""
    from ..core import state

    repo.require_model(model)
    ref = version or (repo.manifests.get((env, model)) or {}).get("version") or env
    number = int(registry.version(model, ref).version)
    verified = registry.fetch_admitted(model, number, state.artifacts_dir(repo.root), env)
    return {
        "model": model,
        "environment": env,
        "primary": [{"version": number, "path": str(verified.path), "percent": 100}],
        "shadow": None,
        "log": str(state.inference_log(repo.root, env, model)),
    }


def run(spec: dict[str, Any], host: str, port: int, token: str) -> int:
    """Bind first (a taken port fails at once), then load; serve until SIGTERM/SIGINT."""
    try:
        server = ModelServer((host, port), spec, token)
    except OSError as exc:
        print(f"error: {host}:{port}: {exc.strerror or exc} (expected a free port)", file=sys.stderr)
        return 3
    stop = threading.Event()

    def shutdown(signum: int, frame: Any) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    try:
        server.apply(spec)
        print(
            f"serving {spec.get('model')} {server.versions()} on http://{host}:{port}",
            file=sys.stderr,
            flush=True,
        )
    except Exception as exc:  # keep answering /health (503, the error) for the reconciler to read
        server.error = str(exc)
        print(f"error: {spec.get('model')} in {spec.get('environment')}: {exc}", file=sys.stderr, flush=True)
    while thread.is_alive():
        thread.join(0.5)
    server.shadow_pool.shutdown(wait=True)
    server.log.close()
    server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_gitops.serving.server", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--spec", type=Path, required=True, help="JSON spec: model, environment, primary, shadow, log"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-file", type=Path, default=None)
    args = parser.parse_args(argv)
    redact.install()  # the server's log is a sink like any other
    spec = json.loads(args.spec.read_text())
    token = args.token_file.read_text().strip() if args.token_file else uuid.uuid4().hex
    return run(spec, args.host, args.port, token)


if __name__ == "__main__":
    sys.exit(main())
