"""Deployment records: what the reconciler did, append-only, for facts, drift and evidence.

Two places, for two readers:

* the log, `.mlops/records/<env>/<model>.jsonl` (or `$MLOPS_STATE_DIR`): every apply,
  rollback and break-glass event, one JSON object per line, appended with fsync. A line cut
  short by a crash is skipped and counted when read, never fatal.
* the registry: a few tags on the model version (`mlops.deploy.<env>.deployed_at`,
  `.healthy_since`, `.result`, `.rollbacks`), so that `mlops facts` in a pull request's CI,
  which cannot see the reconciler's disk, learns how long a version has run healthy where.

The records are facts about the past: nothing here decides anything.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .lineage import TAG_PREFIX


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def state_dir(root: Path) -> Path:
    configured = os.environ.get("MLOPS_STATE_DIR")
    return Path(configured).resolve() if configured else root / ".mlops"


def inference_log(root: Path, env: str, model: str) -> Path:
    """Where the model server of (env, model) logs every answer (what drift and feedback read)."""
    return state_dir(root) / "inference" / env / f"{model}.jsonl"


def append_line(path: Path, line: str) -> None:
    """Append one line to a history file, durably (fsync): a crash loses at most this line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def actor() -> str:
    """Who applied: the GitHub actor in CI, else user@host."""
    if os.environ.get("GITHUB_ACTOR"):
        return f"github:{os.environ['GITHUB_ACTOR']}"
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return f"{user}@{socket.gethostname()}"


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class RecordLog:
    def __init__(self, root: Path):
        self.base = state_dir(root) / "records"

    def path(self, env: str, model: str) -> Path:
        return self.base / env / f"{model}.jsonl"

    def append(self, record: DeploymentRecord) -> None:
        append_line(self.path(record.environment, record.model), record.to_json())

    def read(self, env: str, model: str) -> tuple[list[DeploymentRecord], int]:
        """Every record, oldest first, and how many lines were unreadable (a crash mid-write)."""
        path = self.path(env, model)
        records: list[DeploymentRecord] = []
        skipped = 0
        if not path.exists():
            return records, 0
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                records.append(DeploymentRecord(**json.loads(line)))
            except (ValueError, TypeError):
                skipped += 1
        return records, skipped


def history_tags(env: str, record: DeploymentRecord, current: dict[str, str]) -> dict[str, str]:
    """Registry tags summarising a version's life in one environment, updated by one record."""
    prefix = f"{TAG_PREFIX}deploy.{env}."
    tags = {f"{prefix}result": record.result, f"{prefix}updated_at": record.at}
    if record.result == "healthy":
        tags[f"{prefix}deployed_at"] = current.get(f"{prefix}deployed_at") or record.at
        tags[f"{prefix}healthy_until"] = ""
        # A version that was rolled back, or replaced, and deployed again starts its soak over.
        if current.get(f"{prefix}result") != "healthy" or not current.get(f"{prefix}healthy_since"):
            tags[f"{prefix}healthy_since"] = record.at
    elif record.result == "replaced":  # a newer version took over: its healthy time ends here
        if current.get(f"{prefix}result") == "healthy":
            tags[f"{prefix}healthy_until"] = record.at
    else:
        tags[f"{prefix}healthy_since"] = ""
    if record.result == "rolled-back":
        tags[f"{prefix}rollbacks"] = str(int(current.get(f"{prefix}rollbacks") or 0) + 1)
    return tags


def history_from_tags(tags: dict[str, str]) -> dict[str, dict[str, Any]]:
    """{env: {deployed_at, healthy_since, healthy_until, result, rollbacks}}: facts' input.history."""
    history: dict[str, dict[str, Any]] = {}
    prefix = f"{TAG_PREFIX}deploy."
    for key, value in tags.items():
        if not key.startswith(prefix):
            continue
        env, _, name = key.removeprefix(prefix).rpartition(".")
        entry = history.setdefault(
            env,
            {
                "deployed_at": None,
                "healthy_since": None,
                "healthy_until": None,
                "result": None,
                "rollbacks": 0,
            },
        )
        if name == "rollbacks":
            entry[name] = int(value or 0)
        elif name in entry:
            entry[name] = value or None
    return dict(sorted(history.items()))
