"""Gate decisions, kept: each decision on a promotion's facts, with the findings and the exact
policy files that made it, in the proposed version's run in the registry (where `mlops evidence`
finds it, whichever machine built the pack) and in the deployment's record log here.

A decision can be replayed: its facts, and every policy file by sha256 and source, are in it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..core import tags as names
from ..core.records import RecordLog, utcnow


def canonical(value: Any) -> bytes:
    """Sorted JSON: the same document always gives the same bytes (and sha256)."""
    return (json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n").encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def policy_metadata(source: str) -> dict[str, Any]:
    """The package's METADATA block (title, custom.controls, …) as YAML, {} when it has none."""
    lines = source.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "# METADATA")
    except StopIteration:
        return {}
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else line[1:])
    try:
        loaded = yaml.safe_load("\n".join(block))
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def decision_record(
    document: dict[str, Any], results: Sequence[Any], policy_files: Sequence[Any], engine: str
) -> dict[str, Any]:
    """One gate decision on one facts document: outcome, findings, and the policies that made it."""
    findings = [
        {"kind": f.kind, "rule": f.rule, "msg": f.msg, "namespace": r.namespace}
        for r in results
        for f in r.findings
    ]
    kinds = {f["kind"] for f in findings}
    outcome = "deny" if "failure" in kinds else ("warn" if "warning" in kinds else "allow")
    change = document["change"]
    policies = []
    for file in policy_files:
        if file.is_test:
            continue
        meta = policy_metadata(file.source)
        policies.append(
            {
                "path": file.display,
                "package": file.package,
                "sha256": sha256(file.source.encode()),
                "title": meta.get("title"),
                "controls": sorted((meta.get("custom") or {}).get("controls") or []),
                "source": file.source,
            }
        )
    return {
        "kind": "PolicyDecision",
        "decided_at": document.get("now"),  # the time the policies judged at (injectable)
        "recorded_at": utcnow(),  # when the gate ran: what deployments are compared against
        "model": change["model"],
        "environment": change["environment"],
        "version": change["to_version"],
        "from_version": change.get("from_version"),
        "base_rev": change.get("base_rev"),
        "head_rev": change.get("head_rev"),
        "outcome": outcome,
        "findings": findings,
        "passed": sum(r.successes for r in results),
        "engine": engine,
        "policies": sorted(policies, key=lambda p: p["path"]),
        "facts_sha256": sha256(canonical(document)),
        "facts": document,
    }


def record_decisions(
    registry: Any,
    root: Path,
    files: Sequence[tuple[Path, str]],
    results: Sequence[Any],
    policy_files: Sequence[Any],
    engine: str,
) -> list[str]:
    """Keep the decision on every facts document among `files` ((where to read it, its name in
    the results)) in its version's run, and a summary in the deployment's record log."""
    kept = []
    for path, filename in files:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not (isinstance(document, dict) and isinstance(document.get("change"), dict)):
            continue  # a manifest or a workflow, not a promotion's facts
        change = document["change"]
        if change.get("to_version") is None:
            continue
        mine = [r for r in results if r.filename == filename]
        decision = decision_record(document, mine, policy_files, engine)
        name = names.decision_artifact(change["environment"], decision["decided_at"], change.get("head_rev"))
        run_id = registry.version(change["model"], change["to_version"]).run_id
        registry.log_text(run_id, canonical(decision).decode(), name)
        summary = {k: decision[k] for k in ("version", "outcome", "decided_at", "recorded_at", "head_rev")}
        RecordLog(root).note(
            "decision", change["environment"], change["model"], {**summary, "artifact": name}
        )
        kept.append(
            f"{change['model']} v{change['to_version']} {change['environment']}: {decision['outcome']}"
        )
    return kept
