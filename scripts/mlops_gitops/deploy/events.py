"""Registry events that open promotions: MLflow's webhooks (`mlops webhook`) and a poll of the
registry as their backstop (`mlops watch --registry`), through one rule set (mlops.yaml's
`registry.promotions`) and one memory of what was handled, so the two never propose twice.

MLflow (3.3 and later, SQL stores) posts each event as JSON, `{"entity", "action", "timestamp",
"data"}`, with three headers (mlflow/webhooks/delivery.py, the Standard Webhooks shape):

    X-MLflow-Delivery-Id   a uuid per delivery
    X-MLflow-Timestamp     unix seconds, when it was sent
    X-MLflow-Signature     v1,<base64 of HMAC-SHA256(secret, "<delivery id>.<timestamp>.<body>")>

A delivery counts only when its signature is right for the shared secret (MLOPS_WEBHOOK_SECRET:
the webhook's secret in MLflow, never on a command line), its timestamp is within `TOLERANCE`
seconds of now, and its delivery id was not seen before (ids are kept for twice the tolerance,
so a replay is refused while its timestamp could still pass). Delivery is fire-and-forget with a
few retries: a promotion missed while the receiver was down is found by the poll.

Events acted on: `model_version.created` (its version's tags, as registered, are in the event)
and `model_version_alias.created`. A rule says which event, which models (default: every model
of the repository), which tags or alias it needs, and which environment the version goes to;
the promotion is `mlops promote`'s own pull request, made without touching the working tree.
A version is proposed for an environment once (whichever path saw it first), and never when the
environment's manifest already asks for it or for a newer version.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..core import state, yamlio
from ..core.config import Repo
from ..core.errors import ExitCode, MlopsError
from ..core.gitinfo import default_branch, git, show_file
from .probe import QuietHandler

SECRET_ENV = "MLOPS_WEBHOOK_SECRET"
TOLERANCE = 300  # seconds, Standard Webhooks' default
MAX_BODY = 1 << 20
CREATED = "model_version.created"
ALIASED = "model_version_alias.created"
EVENTS = (CREATED, ALIASED)


class BadRule(MlopsError):
    """A rule of registry.promotions naming what the repository does not have (as a schema error:
    the configuration is invalid, exit code 1)."""

    exit_code = ExitCode.FAILED


class Refused(Exception):
    """A delivery that is not taken: `status` is the HTTP answer, the message says why."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Event:
    kind: str  # one of EVENTS
    model: str
    version: int
    tags: dict[str, str] = field(default_factory=dict)
    alias: str | None = None


@dataclass(frozen=True)
class Rule:
    event: str
    to: str
    models: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    alias: str | None = None

    def matches(self, event: Event) -> bool:
        if event.kind != self.event or (self.models and event.model not in self.models):
            return False
        if self.alias is not None and event.alias != self.alias:
            return False
        return all(event.tags.get(key) == value for key, value in self.tags)


@dataclass(frozen=True)
class Outcome:
    model: str
    version: int
    environment: str
    result: str  # proposed | handled-already | not-newer
    via: str  # webhook | poll
    branch: str | None = None
    pull_request: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rules_of(repo: Repo) -> list[Rule]:
    """mlops.yaml's registry.promotions (the schema checked their shape; names are checked here)."""
    found = []
    envs = [e["name"] for e in repo.project["environments"]]
    for index, entry in enumerate(repo.project["registry"].get("promotions") or []):
        where = f"mlops.yaml: registry.promotions[{index}]"
        if entry["to"] not in envs:
            raise BadRule(
                f"{where}.to: {entry['to']!r} is not an environment (expected one of {', '.join(envs)})"
            )
        unknown = [m for m in entry.get("models", []) if m not in repo.models]
        if unknown:
            raise BadRule(f"{where}.models: {', '.join(unknown)} not defined (expected models under models/)")
        found.append(
            Rule(
                event=entry["event"],
                to=entry["to"],
                models=tuple(entry.get("models", [])),
                tags=tuple(sorted((str(k), str(v)) for k, v in (entry.get("tags") or {}).items())),
                alias=entry.get("alias"),
            )
        )
    return found


# -- a delivery: trusted, then read --------------------------------------------------------------
def signature(secret: str, delivery: str, timestamp: str, body: bytes) -> str:
    """MLflow's v1 signature of a delivery (what its sender computes)."""
    signed = f"{delivery}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value).strip()
    return ""


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """The delivery id of a delivery whose signature and timestamp are good; Refused otherwise.
    (Replays are the memory's: `Memory.first_delivery`.)"""
    delivery = _header(headers, "X-MLflow-Delivery-Id")
    stamp = _header(headers, "X-MLflow-Timestamp")
    given = _header(headers, "X-MLflow-Signature")
    if not (delivery and stamp and given):
        raise Refused(
            401, "unsigned: expected X-MLflow-Delivery-Id, X-MLflow-Timestamp and X-MLflow-Signature"
        )
    if not hmac.compare_digest(given.encode(), signature(secret, delivery, stamp, body).encode()):
        raise Refused(401, "X-MLflow-Signature: not this webhook's secret's signature (expected v1,<HMAC>)")
    try:
        sent = int(stamp)
    except ValueError:
        raise Refused(400, f"X-MLflow-Timestamp: {stamp[:40]!r} (expected unix seconds)") from None
    if abs(now - sent) > TOLERANCE:
        raise Refused(
            400, f"X-MLflow-Timestamp: {int(now - sent)} s from now (expected within {TOLERANCE} s)"
        )
    return delivery


def parse(body: bytes) -> Event | None:
    """The event a delivery carries; None for an event no rule can act on; Refused if malformed."""
    try:
        document = json.loads(body)
        kind = f"{document['entity']}.{document['action']}"
        data = document["data"]
    except (ValueError, KeyError, TypeError):
        raise Refused(400, "body: not an MLflow webhook event (expected entity, action and data)") from None
    if kind not in EVENTS:
        return None
    try:
        model, version = state.name("model", data["name"]), int(data["version"])
    except (KeyError, TypeError, ValueError, MlopsError) as exc:
        raise Refused(400, f"data: {exc} (expected a model name and a version number)") from None
    tags = data.get("tags") if kind == CREATED else {}
    alias = str(data.get("alias")) if kind == ALIASED else None
    return Event(kind, model, version, {str(k): str(v) for k, v in (tags or {}).items()}, alias)


# -- what was handled ----------------------------------------------------------------------------
class Memory:
    """What the receiver and the poll handled, and the delivery ids seen: one JSON file in the
    state directory, read and written under an exclusive lock (the two may run at once)."""

    def __init__(self, root: Path):
        self.path = state.state_dir(root) / "registry-events.json"

    @contextlib.contextmanager
    def held(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            data.setdefault("handled", {})
            data.setdefault("deliveries", {})
            yield data
            yamlio.write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def first_delivery(self, delivery: str, now: float) -> bool:
        """Remember `delivery`; False when it was seen already (a replay)."""
        with self.held() as data:
            seen = {k: v for k, v in data["deliveries"].items() if now - float(v) <= 2 * TOLERANCE}
            first = delivery not in seen
            seen.setdefault(delivery, now)
            data["deliveries"] = seen
            return first

    def forget(self, delivery: str) -> None:
        """A delivery that failed is not a replay when MLflow retries it (same id, same body)."""
        with self.held() as data:
            data["deliveries"].pop(delivery, None)


# -- acting on an event --------------------------------------------------------------------------
def asked_version(repo: Repo, model: str, env: str) -> int | None:
    """The version the default branch's manifest asks for (None: none, or no manifest)."""
    path = repo.manifest_path(env, model).relative_to(repo.root).as_posix()
    text = show_file(repo.root, default_branch(repo.root), path)
    version = (yamlio.loads(text, path) or {}).get("version") if text else None
    return int(version) if isinstance(version, int) else None


def sync(root: Path) -> Repo:
    """Bring the default branch up to its remote before proposing from it (a receiver's checkout
    lives long; without a remote, or off that branch, nothing to pull), then read the repository
    as it is now: a rule or a model added since the start counts."""
    from ..core.config import load_repo

    branch = default_branch(root)
    if git(root, "remote", check=False) and git(root, "rev-parse", "--abbrev-ref", "HEAD") == branch:
        git(root, "pull", "--ff-only", "--quiet", "origin", branch, check=False)
    return load_repo(root)


def handle(
    repo: Repo, registry: Any, event: Event, via: str, rules: list[Rule] | None = None
) -> list[Outcome]:
    """Every rule `event` matches (of `rules`, default mlops.yaml's), acted on: the promotion
    proposed, or why not."""
    from ..deploy.promote import promote

    outcomes: list[Outcome] = []
    if event.model not in repo.models:  # another project's model in a shared registry
        return outcomes
    for rule in rules_of(repo) if rules is None else rules:
        if not rule.matches(event):
            continue
        key = f"{event.model}/{rule.to}/{event.version}"
        with Memory(repo.root).held() as data:
            if key in data["handled"]:
                outcomes.append(Outcome(event.model, event.version, rule.to, "handled-already", via))
                continue
            asked = asked_version(repo, event.model, rule.to)
            if asked is not None and asked >= event.version:
                outcomes.append(Outcome(event.model, event.version, rule.to, "not-newer", via))
                continue
            reason = f"registry event {event.kind}" + (f" (@{event.alias})" if event.alias else "")
            made = promote(
                repo, registry.has_version, event.model, rule.to, event.version, None, reason, checkout=False
            )
            data["handled"][key] = {"at": time.time(), "via": via, "branch": made.branch}
            outcomes.append(
                Outcome(event.model, event.version, rule.to, "proposed", via, made.branch, made.pull_request)
            )
    return outcomes


def poll(repo: Repo, registry: Any) -> list[Outcome]:
    """The backstop: what the rules would have been sent, found in the registry now. For a
    created-version rule, the newest version of each model whose tags match; for an alias rule,
    the version the alias names. Each through `handle`, so nothing is proposed twice."""
    outcomes: list[Outcome] = []
    rules = rules_of(repo)
    aliases = registry.aliases() if any(r.event == ALIASED for r in rules) else {}
    for rule in rules:
        for model in rule.models or tuple(sorted(repo.models)):
            if rule.event == CREATED:
                found = [
                    Event(CREATED, model, int(v.version), dict(v.tags or {}))
                    for v in registry.versions(model)
                ]
                matching = sorted((e for e in found if rule.matches(e)), key=lambda e: e.version)
                events = matching[-1:]
            else:
                number = aliases.get(model, {}).get(rule.alias or "")
                events = [Event(ALIASED, model, number, {}, rule.alias)] if number else []
            for event in events:
                found_now = handle(repo, registry, event, "poll", rules)
                outcomes += [o for o in found_now if o.environment == rule.to]
    return outcomes


def secret() -> str:
    """The shared secret, from the environment only; one line when it is not there."""
    value = os.environ.get(SECRET_ENV, "")
    if len(value) < 16:
        raise MlopsError(
            f"{SECRET_ENV}: {'too short' if value else 'not set'} (expected the webhook's secret, "
            "16 characters or more, as given to MLflow's create_webhook)"
        )
    return value


# -- the receiver --------------------------------------------------------------------------------
class Receiver(ThreadingHTTPServer):
    """`mlops webhook`'s server: POST / takes a delivery, GET /healthz says what it did. One
    delivery is acted on at a time (promotions are git commits in one checkout)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], repo: Repo, registry: Any, key: str):
        super().__init__(address, _Handler)
        self.repo, self.registry, self.key = repo, registry, key
        self.memory = Memory(repo.root)
        self.acting = threading.Lock()
        self.counts = dict.fromkeys(("received", "proposed", "ignored", "refused", "replayed", "failed"), 0)

    def take(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """A delivery, verified then acted on: the answer's body; Refused for a bad delivery."""
        now = time.time()
        delivery = verify(self.key, headers, body, now)
        if not self.memory.first_delivery(delivery, now):
            self.counts["replayed"] += 1
            raise Refused(409, f"X-MLflow-Delivery-Id {delivery}: delivered before (a replay)")
        event = parse(body)
        if event is None:
            self.counts["ignored"] += 1
            return {"delivery": delivery, "outcomes": [], "note": "an event no rule acts on"}
        with self.acting:
            try:
                # the checkout lives long: its rules and models are read again after the pull
                self.repo = sync(self.repo.root)
                outcomes = handle(self.repo, self.registry, event, "webhook")
            except MlopsError:
                self.memory.forget(delivery)
                raise
        self.counts["proposed"] += sum(o.result == "proposed" for o in outcomes)
        return {"delivery": delivery, "outcomes": [o.to_dict() for o in outcomes]}


class _Handler(QuietHandler):
    server: Receiver

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/healthz":
            self._send(404, b'{"error": "not found (expected GET /healthz or POST /)"}')
            return
        self._send(200, json.dumps({"status": "ok", **self.server.counts}).encode())

    def do_POST(self) -> None:
        counts = self.server.counts
        counts["received"] += 1
        try:
            length = int(self.headers.get("Content-Length") or -1)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            counts["refused"] += 1
            self._send(413 if length > MAX_BODY else 411, b'{"error": "Content-Length: 0 to 1 MiB expected"}')
            return
        body = self.rfile.read(length)
        try:
            answer = self.server.take(dict(self.headers.items()), body)
        except Refused as refused:
            counts["refused"] += refused.status != 409
            self._send(refused.status, json.dumps({"error": str(refused)}).encode())
            return
        except MlopsError as exc:  # the promotion could not be made: MLflow retries on a 5xx
            counts["failed"] += 1
            self._send(500, json.dumps({"error": str(exc)}).encode())
            return
        self._send(200, json.dumps(answer).encode())
