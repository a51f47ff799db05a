"""`mlops history MODEL --env E [--at TIME]`: what served there, since when, and why.

The answer is assembled from what exists already, never kept twice:

    the deployment records   what served from when to when, who applied it, rollbacks and
                             their causes, break-glass events, an analysed canary's verdicts
    git                      the commit that set the manifest's version, the merge (pull
                             request) that brought it in, the trailers it claims
    the registry             the gate's recorded decisions on the version, with the approvals
                             it counted (reachable or not: without it, the rest still answers)

A stretch is one routing (versions and weights) from the record that set it to the next one
that changed it; failed attempts, canary verdicts and rollbacks in between are its events. A
split's "why" and gate are its canary's: the version the split is there to try.
"""

from __future__ import annotations

import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core import tags as names
from ..core.config import ENVIRONMENTS_DIR, Repo
from ..core.errors import MlopsError
from ..core.gitinfo import git, manifest_history
from ..core.health import Result
from ..core.records import RecordLog

SETS_SERVING = (Result.HEALTHY, Result.ROLLED_BACK, Result.BREAK_GLASS, Result.REMOVED)
PULL_REQUEST = re.compile(r"(?:pull request #|\(#)(\d+)")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (a date alone is its midnight, UTC; no zone is UTC); one clear line else."""
    try:
        found = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MlopsError(
            f"--at: {text!r} is not a time (expected ISO 8601, e.g. 2026-11-24T14:00:00Z)"
        ) from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def stretches(repo: Repo, model: str, env: str) -> list[dict[str, Any]]:
    """Every routing that served, oldest first, each with the events that happened during it."""
    log = RecordLog(repo.root)
    records, _ = log.read(env, model)
    analyses = log.entries(env, model, "analysis") + log.entries(env, model, "hold")
    found: list[dict[str, Any]] = []
    for record in records:
        routing = [(t["version"], t["percent"]) for t in record.traffic] or (
            [(record.version, 100)] if record.version is not None else []
        )
        current = found[-1] if found else None
        if record.result in SETS_SERVING and (current is None or current["routing"] != routing):
            if current is not None:
                current["until"] = record.at
            found.append(
                {
                    "version": record.version if record.result != Result.REMOVED else None,
                    # a split's other version: the one a canary (or an analysed rollout) is trying
                    "canary": next((v for v, _ in routing if v != record.version), None),
                    "routing": routing,
                    "since": record.at,
                    "until": None,
                    "id": record.id,  # what `mlops rollback --to-record` takes
                    "record": {**record.__dict__, "id": record.id},
                    "events": [],
                }
            )
        elif current is not None:
            current["events"].append({**record.__dict__, "id": record.id})
    for entry in analyses:
        holder = next((s for s in reversed(found) if s["since"] <= str(entry.get("at", ""))), None)
        if holder is not None:
            holder["events"].append(entry)
    for stretch in found:
        stretch["events"].sort(key=lambda e: str(e.get("at") or e.get("recorded_at") or ""))
    return found


def _why(
    repo: Repo, model: str, env: str, stretch: dict[str, Any], commits: dict[int, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The commit and pull request that asked for the stretch's version (the newest commit that
    set the manifest to it and is part of the record's revision), and the trailers it claims."""
    version, revision = stretch["canary"] or stretch["version"], stretch["record"].get("revision", "")
    if version is None:
        return {}
    path = f"{ENVIRONMENTS_DIR}/{env}/{model}.yaml"
    known = bool(re.fullmatch(r"[0-9a-f]{7,64}", revision or "")) and (
        git(repo.root, "cat-file", "-t", revision, check=False) == "commit"
    )
    if version not in commits:  # one walk of git per version, however many stretches it served
        commits[version] = manifest_history(repo.root, path, int(version))
    for commit in commits[version]:
        if known and not _ancestor(repo.root, commit["commit"], revision):
            continue  # set after the revision that was deployed: not what asked for this one
        merge = commit.get("merge") or {}
        text = f"{merge.get('subject', '')} {commit['subject']}"
        number = PULL_REQUEST.search(text)
        return {
            "commit": commit["commit"],
            "subject": commit["subject"],
            "author": commit["author"],
            "committed_at": commit["committed_at"],
            "merge": merge.get("commit"),
            "pull_request": int(number.group(1)) if number else None,
            "claimed_in_git": commit["trailers"] + (merge.get("trailers") or []),
        }
    return {}


def _ancestor(root: Path, commit: str, revision: str) -> bool:
    import subprocess

    asked = ["git", "merge-base", "--is-ancestor", commit, revision]
    return subprocess.run(asked, cwd=root, capture_output=True).returncode == 0


def _decisions(registry: Any, model: str, env: str, version: int) -> tuple[list[dict[str, Any]], str]:
    """The gate's recorded decisions on the version in env, oldest first ("" or why none could be read)."""
    try:
        run_id = registry.version(model, version).run_id
        with tempfile.TemporaryDirectory() as tmp:
            folder = registry.download(run_id, names.DECISIONS, Path(tmp))
            found = [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))] if folder else []
    except (MlopsError, OSError, ValueError) as exc:
        return [], f"registry: {str(exc).splitlines()[0][:200]}"
    mine = [d for d in found if d.get("environment") == env]
    return sorted(mine, key=lambda d: str(d.get("recorded_at") or d.get("decided_at"))), ""


def _gate(decisions: list[dict[str, Any]], since: str) -> dict[str, Any] | None:
    before = [d for d in decisions if str(d.get("recorded_at") or d.get("decided_at")) <= since]
    if not before:
        return None
    last = before[-1]
    failures = sorted({f["rule"] for f in last.get("findings", []) if f.get("kind") == "failure"})
    return {
        "outcome": last.get("outcome"),
        "decided_at": last.get("decided_at"),
        "head_rev": last.get("head_rev"),
        "denied_by": failures,
        "approvals": (last.get("facts") or {}).get("approvals"),
    }


def history(repo: Repo, registry: Any, model: str, env: str, at: datetime | None = None) -> dict[str, Any]:
    """The stretches (or the one serving at `at`), each with why it served."""
    repo.require_model(model)
    repo.require_environment(env)
    found = stretches(repo, model, env)
    if at is not None:
        found = [
            s for s in found if _at(s["since"]) <= at and (s["until"] is None or at < _at(str(s["until"])))
        ]
    decisions: dict[int, tuple[list[dict[str, Any]], str]] = {}
    gaps = []
    commits: dict[int, list[dict[str, Any]]] = {}
    for stretch in found:
        stretch["why"] = _why(repo, model, env, stretch, commits)  # for a split: why its canary runs
        version = stretch["canary"] or stretch["version"]
        if version is not None:
            if version not in decisions:
                decisions[version] = _decisions(registry, model, env, int(version))
            stretch["gate"] = _gate(decisions[version][0], stretch["since"])
            if decisions[version][1]:
                gaps.append(decisions[version][1])
        stretch["rollbacks"] = [
            {"at": e["at"], "from": e["previous"], "to": e["version"], "cause": e["reason"]}
            for e in [stretch["record"], *stretch["events"]]
            if e.get("result") in (Result.ROLLED_BACK, Result.BREAK_GLASS)
        ]
        # break-glass holds: placed (who, why) and ended (git agreed, or `mlops resume`)
        stretch["holds"] = [
            {k: e.get(k) for k in ("action", "at", "by", "reason", "how", "branch")}
            for e in stretch["events"]
            if e.get("kind") == "hold"
        ]
    return {
        "model": model,
        "environment": env,
        "at": at.isoformat().replace("+00:00", "Z") if at else None,
        "stretches": found,
        "gaps": sorted(set(gaps)),
    }


def rows(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The table's rows: one per stretch."""
    out = []
    for s in document["stretches"]:
        why, gate = s.get("why") or {}, s.get("gate") or {}
        routing = " ".join(f"v{v}" if p == 100 else f"v{v}:{p}%" for v, p in s["routing"]) or "-"
        pr = f"#{why['pull_request']}" if why.get("pull_request") else (why.get("commit") or "")[:8]
        causes = "; ".join(f"{r['cause']}" for r in s["rollbacks"])[:120]
        held = "; ".join(
            f"hold {h['action']} by {h['by']}" + (f" ({h['how']})" if h.get("how") else "")
            for h in s.get("holds", [])
        )
        out.append(
            (s["id"], routing, s["since"], s["until"] or "now", s["record"]["result"], s["record"]["by"], pr,
             gate.get("outcome") or "-", "; ".join(c for c in (causes, held) if c) or "-")
        )  # fmt: skip
    return out
