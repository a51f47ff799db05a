"""The record of everything that happened to a deployment: one append-only log per model and
environment (`state.records_log`), one JSON object per line, appended with fsync, one reader.

Each line has a `kind`:

    deployment   what the reconciler did: an apply, a rollback, a removal, a break-glass event
    drift        a drift verdict (`mlops drift`), with its report's path
    feedback     a live-performance verdict (`mlops feedback`), with its report's path
    decision     a promotion gate's decision taken here (`mlops check --record`; the registry
                 keeps the full decision, where CI on any machine can reach it)
    analysis     an analysed canary's verdict: its step and weight, each check, what it led to
    compare      an A/B comparison of the versions that served side by side (`mlops compare`)
    hold         a break-glass hold placed, or ended (by git agreeing, or `mlops resume`)

A line cut short by a crash is skipped and counted when read, never fatal. A summary of the
deployments also goes onto the versions as registry tags (`tags.history_tags`), so that `mlops
facts` in a pull request's CI, which cannot see this disk, learns how long a version has run
healthy where. The records are facts about the past: nothing here decides anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import state
from .redact import redact


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def append_line(path: Path, line: str) -> None:
    """Append one line to a history file, durably (fsync): a crash loses at most this line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (redact(line) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def actor() -> str:
    """Who applied: the GitHub actor in CI, else user@host."""
    if os.environ.get("GITHUB_ACTOR"):
        return f"github:{os.environ['GITHUB_ACTOR']}"
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return f"{user}@{socket.gethostname()}"


KINDS = ("deployment", "drift", "feedback", "decision", "analysis", "compare", "hold")


@dataclass
class DeploymentRecord:
    model: str
    environment: str
    version: int | None  # what runs after this event (None: nothing)
    previous: int | None  # what ran before
    result: str  # healthy | failed | rolled-back | removed | break-glass
    revision: str  # the git commit of the desired state
    at: str = field(default_factory=utcnow)
    by: str = field(default_factory=actor)
    reason: str = ""  # why: the failure cause, the rollback's trigger, the break-glass note
    target: str = "local"
    url: str = ""
    artifact_sha256: str = ""
    traffic: list[dict[str, int]] = field(default_factory=list)
    shadow: int | None = None
    # rolled-back only: seconds from the failed health check to the previous version serving
    # again (0.0 when the new one failed before it was switched in: the old never stopped)
    recovery_s: float | None = None
    kind: str = "deployment"
    # the manifest's analysed-rollout settings this routing was deployed under (a rollback puts
    # them back with it), and, for one step of a rollout, the canary's weight at that step (a
    # step is never a point a rollback returns to)
    rollout: dict[str, Any] | None = None
    step: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def id(self) -> str:
        """The record's name in `mlops history` and `mlops rollback --to-record`: a digest of its
        content, the same on every machine that reads the same line."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @property
    def routing(self) -> Routing | None:
        """What served after this event (None when nothing did)."""
        if self.version is None:
            return None
        split = tuple(sorted((int(t["version"]), int(t["percent"])) for t in self.traffic))
        return Routing(
            self.version,
            split if len(split) > 1 else (),
            self.shadow,
            self.rollout or None,
        )


def split_of(manifest: dict[str, Any]) -> tuple[tuple[int, int], ...]:
    """A manifest's split as (version, percent) pairs, the stable `version` first: from its
    `canary` (the challenger and its share), or the older `traffic` list; () without a split."""
    canary = manifest.get("canary")
    if canary and manifest.get("version") is not None:
        percent = int(canary["percent"])
        return ((int(manifest["version"]), 100 - percent), (int(canary["version"]), percent))
    return tuple((int(t["version"]), int(t["percent"])) for t in manifest.get("traffic") or [])


@dataclass(frozen=True)
class Routing:
    """A deployment's whole routing: the primary version, the split (empty: the primary takes
    everything), the shadow, and the analysed-rollout settings it came with. What a rollback
    returns to, and what a hold keeps."""

    version: int
    traffic: tuple[tuple[int, int], ...] = ()
    shadow: int | None = None
    rollout: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def weights(self) -> tuple[tuple[int, int], ...]:
        return self.traffic or ((self.version, 100),)

    def text(self) -> str:
        """'v2 50% + v1 50% + shadow v3', the way people say it."""
        ordered = sorted(self.weights, key=lambda w: (w[0] != self.version, -w[1]))  # the primary first
        said = " + ".join(f"v{v} {p}%" for v, p in ordered)
        return (
            said
            + (f" + shadow v{self.shadow}" if self.shadow else "")
            + (" (analysed rollout)" if self.rollout else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "traffic": [{"version": v, "percent": p} for v, p in self.traffic] or None,
            "shadow": self.shadow,
            "rollout": self.rollout,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Routing:
        traffic = tuple(sorted((int(t["version"]), int(t["percent"])) for t in data.get("traffic") or []))
        return cls(
            int(data["version"]), traffic if len(traffic) > 1 else (), data.get("shadow"), data.get("rollout")
        )

    @classmethod
    def of_manifest(cls, manifest: dict[str, Any]) -> Routing | None:
        if manifest.get("version") is None:
            return None
        traffic = [{"version": v, "percent": p} for v, p in split_of(manifest)]
        return cls.from_dict(
            {**manifest, "traffic": traffic, "shadow": (manifest.get("shadow") or {}).get("version")}
        )

    @property
    def challenger(self) -> tuple[int, int] | None:
        """(version, percent) of the version beside the stable one in a split; None without one."""
        return next(((v, p) for v, p in self.traffic if v != self.version), None)


class RecordLog:
    def __init__(self, root: Path):
        self.root = root

    def path(self, env: str, model: str) -> Path:
        return state.records_log(self.root, env, model)

    def append(self, record: DeploymentRecord) -> None:
        append_line(self.path(record.environment, record.model), record.to_json())

    def note(self, kind: str, env: str, model: str, entry: dict[str, Any]) -> None:
        """Append a drift, feedback or decision entry (a JSON object with its own fields)."""
        assert kind in KINDS and kind != "deployment"
        line = {**entry, "kind": kind, "model": model, "environment": env}
        line.setdefault("recorded_at", utcnow())
        append_line(self.path(env, model), json.dumps(line, sort_keys=True, default=str))

    def _lines(self, env: str, model: str) -> tuple[list[dict[str, Any]], int]:
        """Every readable entry, oldest first, and how many lines were not (a crash mid-write)."""
        path = self.path(env, model)
        if not path.exists():
            return [], 0
        entries, skipped = [], 0
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                skipped += 1
                continue
            if isinstance(entry, dict):
                entries.append(entry)
            else:
                skipped += 1
        return entries, skipped

    def read(self, env: str, model: str) -> tuple[list[DeploymentRecord], int]:
        """The deployment records, oldest first, and how many lines were unreadable."""
        entries, skipped = self._lines(env, model)
        records: list[DeploymentRecord] = []
        for entry in entries:
            if entry.get("kind", "deployment") != "deployment":
                continue
            try:
                records.append(DeploymentRecord(**entry))
            except TypeError:
                skipped += 1
        return records, skipped

    def entries(self, env: str, model: str, kind: str) -> list[dict[str, Any]]:
        """The drift, feedback or decision entries, oldest first."""
        return [e for e in self._lines(env, model)[0] if e.get("kind") == kind]
