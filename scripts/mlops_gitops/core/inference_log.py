"""The inference log: one entry format, one writer, one reader, one rule about failed requests.

Every model server (`serving.server`) and the KServe logger's receiver (`monitor.collect`)
append JSON lines to `.mlops/logs/<env>/<model>.jsonl` (the path is `state.inference_log`'s);
drift, feedback, compare, the rollout's analysis and the evidence pack read them here, nowhere
else. A line is one `Entry`:

    {"v": 1, "request_id", "at": "2026-01-01T00:00:00.000Z", "model", "environment",
     "version": 3, "role": "primary" | "shadow", "inputs": [{column: value}, ...],
     "outputs": [...], "latency_ms": 4.2, "error": "..." (only when the request failed),
     "caller": "10.0.0.7" (only where known: the model server's peer address)}

Lines written before the format had a version (no "v") read as version 1: the fields are the same.

The rule about failed requests, for every reader: a failed primary request is **traffic**
(it counts in a request total and in an error rate: the canary analysis, compare, the evidence's
request count) but **not an answer** (it has no predictions, so it is no row of drift's sample,
feedback's join or a prediction distribution). `Entry.answered` says which. Shadow answers are
never traffic: the readers return primary entries only. A line cut short or garbled is
skipped and counted, never fatal; a line still being written waits for the next read.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

VERSION = 1
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")  # as `now()` writes it


class Role(StrEnum):
    PRIMARY = "primary"  # the version that answered the client
    SHADOW = "shadow"  # a copy of the request answered by the shadow version; never traffic
    # a request its client pinned to one version (the v2 protocol's /versions/N/ route): answered
    # and logged, but not traffic the split assigned, so no analysis, comparison or drift judges it
    PINNED = "pinned"


@dataclass(frozen=True, slots=True)
class Entry:
    request_id: str
    at: str  # ISO 8601, UTC, milliseconds, "Z": sortable as text
    model: str | None
    environment: str | None
    version: int
    role: Role
    inputs: list[dict[str, Any]]
    outputs: Any
    latency_ms: float
    error: str | None = None
    caller: str | None = None  # who sent it, where known (the peer address the server saw)

    @property
    def answered(self) -> bool:
        """The model answered (its outputs are predictions); False for a failed request."""
        return self.error is None

    @property
    def moment(self) -> datetime:
        return parse_at(self.at)

    def to_dict(self) -> dict[str, Any]:
        found = {
            "v": VERSION,
            "request_id": self.request_id,
            "at": self.at,
            "model": self.model,
            "environment": self.environment,
            "version": self.version,
            "role": str(self.role),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "latency_ms": self.latency_ms,
        }
        if self.error is not None:
            found["error"] = self.error
        if self.caller is not None:
            found["caller"] = self.caller
        return found

    @classmethod
    def of(cls, raw: Any) -> Entry:
        """The entry a parsed line holds; ValueError when it is not one."""
        if not isinstance(raw, dict) or int(raw.get("v", VERSION)) != VERSION:
            raise ValueError("not an inference log entry of this version")
        try:
            inputs = raw["inputs"]
            if not isinstance(inputs, list) or not all(isinstance(r, dict) for r in inputs):
                raise ValueError("inputs: expected a list of records")
            error, at, caller = raw.get("error"), str(raw["at"]), raw.get("caller")
            return cls(
                request_id=str(raw["request_id"]),
                at=at if STAMP.match(at) else stamp(parse_at(at)),
                model=raw.get("model"),
                environment=raw.get("environment"),
                version=int(raw["version"]),
                role=Role(raw.get("role", Role.PRIMARY)),
                inputs=inputs,
                outputs=raw.get("outputs"),
                latency_ms=float(raw.get("latency_ms") or 0.0),
                error=str(error) if error else None,
                caller=str(caller) if caller else None,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(str(exc)) from exc


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def stamp(moment: datetime) -> str:
    """A moment in the log's own text form (UTC, milliseconds, Z), comparable with `Entry.at`."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry(
    spec: dict[str, Any],
    request_id: str,
    version: int,
    role: Role | str,
    inputs: list[dict[str, Any]],
    outputs: Any,
    seconds: float,
    error: str | None = None,
    caller: str | None = None,
) -> Entry:
    """One request's entry, stamped now; `spec` names the model and environment."""
    return Entry(
        request_id=request_id,
        at=now(),
        model=spec.get("model"),
        environment=spec.get("environment"),
        version=version,
        role=Role(role),
        inputs=inputs,
        outputs=outputs,
        latency_ms=round(seconds * 1000, 3),
        error=error,
        caller=caller,
    )


class Writer:
    """Append-only JSON lines, one per entry, safe from many threads; `None` writes nothing.
    The line is encoded by the caller's thread and written under a lock, whole, so readers never
    see two entries interleaved."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self._handle = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = path.open("ab", buffering=0)

    def write(self, item: Entry) -> None:
        if self._handle is None:
            return
        line = orjson.dumps(item.to_dict(), default=str) + b"\n"
        with self._lock:
            self._handle.write(line)

    def close(self) -> None:
        if self._handle is not None:
            with self._lock:
                self._handle.close()


@dataclass
class Read:
    """What a read found: primary entries (failed ones included, see `Entry.answered`), oldest
    first, how many lines were unreadable, and the byte offset after the last whole line."""

    entries: list[Entry] = field(default_factory=list)
    skipped: int = 0
    offset: int = 0

    def answered(self) -> list[Entry]:
        return [e for e in self.entries if e.answered]


def _parsed(raw: bytes) -> Entry | None:
    """A line's entry; None for a line that is not one."""
    try:
        return Entry.of(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValueError):
        return None


def _start(path: Path, offset: int) -> int:
    """Where to read from: `offset`, or the start of a log shorter than it (truncated, replaced)."""
    return 0 if offset > path.stat().st_size else offset


def scan(path: Path, since: datetime | None = None, offset: int = 0) -> Iterator[Entry | None]:
    """Each whole line's primary entry from byte `offset` on, at or after `since` (None for a line
    that is not an entry), streamed: never holds the log."""
    if not path.exists():
        return
    floor = stamp(since) if since is not None else ""
    with path.open("rb") as handle:
        handle.seek(_start(path, offset))
        for raw in handle:
            if not raw.endswith(b"\n"):
                return  # still being written
            found = _parsed(raw)
            if found is None or (found.role is Role.PRIMARY and found.at >= floor):
                yield found


def read(path: Path, since: datetime | None = None, offset: int = 0) -> Read:
    """The log's primary entries from byte `offset` (at or after `since`), whole lines only, and
    the offset after the last whole line."""
    if not path.exists():
        return Read(offset=offset)
    found = Read(offset=_start(path, offset))
    with path.open("rb") as handle:
        handle.seek(found.offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    found.offset += end
    for item in scan_bytes(data[:end], since):
        if item is None:
            found.skipped += 1
        else:
            found.entries.append(item)
    return found


def scan_bytes(data: bytes, since: datetime | None) -> Iterator[Entry | None]:
    floor = stamp(since) if since is not None else ""
    for raw in data.splitlines():
        if not raw.strip():
            continue
        item = _parsed(raw)
        if item is None or (item.role is Role.PRIMARY and item.at >= floor):
            yield item
