"""One gatherer per file of the pack: each reads its sources, adds its file (and the gaps it
finds) to the pack, and returns what the files after it need."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..core import inference_log, state
from ..core import tags as names
from ..core.config import ENVIRONMENTS_DIR, Repo
from ..core.errors import MlopsError
from ..core.github import codeowners
from ..core.gitinfo import manifest_history
from ..core.health import Result
from ..core.records import RecordLog
from ..gate.decisions import sha256
from ..gate.facts import fairness_facts
from .pack import Pack


@dataclass
class Sources:
    """The version the pack proves, and where its facts are."""

    repo: Repo
    registry: Any
    model: str
    env: str
    number: int
    raw: Any  # the registry's model version
    definition: dict[str, Any]

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.raw.tags)

    @cached_property
    def signing(self) -> dict[str, Any]:
        """The version's artifact, hashed as stored now, and its signature checked as the
        reconciler checks it for this environment: one download for lineage.json and
        supply-chain/ alike (`signing_facts`)."""
        facts: dict[str, Any] = self.registry.signing_facts(self.model, self.number, self.env)
        return facts


def _time(value: Any) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(value) / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _download(src: Sources, artifact: str, tmp: Path) -> Path | None:
    try:
        return src.registry.download(src.raw.run_id, artifact, tmp)  # type: ignore[no-any-return]
    except MlopsError:
        return None


def lineage_json(pack: Pack, src: Sources) -> dict[str, Any]:
    tags, actual = names.lineage_of(src.tags), src.signing["sha256_actual"]
    lineage = {
        "model": src.raw.name,
        "version": int(src.raw.version),
        "run_id": src.raw.run_id,
        "source": src.raw.source,
        "registered_at": _time(src.raw.creation_timestamp),
        "artifact_sha256": tags.get("artifact_sha256"),
        "artifact_sha256_now": actual,
        "artifact_unchanged": actual is not None and actual == tags.get("artifact_sha256"),
        "signature": tags.get("signature") == "true",
        "code": {
            "commit": tags.get("git.commit"),
            "branch": tags.get("git.branch"),
            "dirty": tags.get("git.dirty"),
        },
        "data": tags.get("data") or {},
        "dvc_lock_sha256": tags.get("dvc.lock_sha256"),
        "params": tags.get("params") or {},
        "environment": {"python": tags.get("python"), "packages": tags.get("packages") or {}},
        "training": {
            "learner": tags.get("learner"),
            "device": tags.get("device"),
            "device_name": tags.get("device_name"),
        },
        "runner": {"name": tags.get("runner.name"), "labels": tags.get("runner.labels")},
        "fingerprint": tags.get("fingerprint"),
    }
    if not lineage["artifact_unchanged"]:
        pack.gaps.append("lineage.json: the stored artifact no longer hashes to the registered sha256")
    pack.add("lineage.json", lineage)
    return lineage


def thresholds(
    definition: dict[str, Any], metrics: dict[str, Any], found: dict[str, dict[str, float]]
) -> list[dict[str, Any]]:
    """Each threshold of model.yaml, and each fairness maximum (`found`: the measured gaps)."""
    rows = []
    for metric, bound in sorted((definition.get("metrics") or {}).get("thresholds", {}).items()):
        value = metrics.get(metric)
        rules, passed = [], value is not None
        if "min" in bound:
            rules.append(f">= {bound['min']}")
            passed = passed and value >= bound["min"]
        if "max" in bound:
            rules.append(f"<= {bound['max']}")
            passed = passed and value <= bound["max"]
        rows.append({"metric": metric, "value": value, "rule": " and ".join(rules), "passed": bool(passed)})
    fairness = definition.get("fairness") or {}
    for feature in sorted(fairness.get("sensitive_features") or {}):
        for name in ("demographic_parity_difference", "equalized_odds_difference"):
            limit = fairness.get(f"max_{name}")
            if limit is not None:
                value = found.get(feature, {}).get(name)
                passed = value is not None and value <= limit
                rows.append(
                    {"metric": f"{name} ({feature})", "value": value, "rule": f"<= {limit}", "passed": passed}
                )
    return rows


def metrics_json(pack: Pack, src: Sources) -> dict[str, Any]:
    """metrics.json and report/ (the champion/challenger report from the version's run)."""
    metrics = names.metrics_of(src.tags)
    verdict = names.report_of(src.tags)
    with tempfile.TemporaryDirectory() as tmp:
        folder = _download(src, names.REPORT, Path(tmp))
        for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder else []:
            pack.add(f"report/{path.relative_to(folder).as_posix()}", path.read_bytes())  # type: ignore[arg-type]
    text = pack.files.get("report/report.md")
    report = {
        "passed": verdict["passed"] is True,
        "baseline": verdict["baseline"],
        "sha256_registered": verdict["sha256"],
        "included": text is not None,
        "matches_registered": text is not None and sha256(text) == verdict["sha256"],
    }
    if text is None:
        pack.gaps.append(
            "report/: no champion/challenger report in the version's run (expected `mlops register --report`)"
        )
    elif not report["matches_registered"]:
        pack.gaps.append("report/report.md: does not hash to the report.sha256 registered on the version")
    fairness = fairness_facts(metrics)
    document = {
        "risk_tier": src.definition.get("risk_tier"),
        "primary": (src.definition.get("metrics") or {}).get("primary"),
        "metrics": {k: v for k, v in sorted(metrics.items()) if not k.startswith("fairness.")},
        "fairness": fairness,
        "thresholds": thresholds(src.definition, metrics, fairness),
        "max_regression": (src.definition.get("metrics") or {}).get("max_regression"),
        "report": report,
    }
    pack.add("metrics.json", document)
    return {**document, "all": metrics}


def supply_chain(
    pack: Pack, src: Sources, lineage: dict[str, Any], metrics: dict[str, Any]
) -> dict[str, Any]:
    """supply-chain/: the signature checked as the reconciler checks it for this environment, the
    bundles and the provenance statement kept with the version, and its ML-BOM (CycloneDX 1.6)."""
    from . import mlbom

    facts = {key: value for key, value in src.signing.items() if key != "sha256_actual"}  # lineage.json's
    claimed = names.signing_of(src.tags)
    with tempfile.TemporaryDirectory() as tmp:
        folder = _download(src, claimed["bundle"], Path(tmp)) if claimed else None
        for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder else []:
            pack.add(f"supply-chain/{path.relative_to(folder).as_posix()}", path.read_bytes())  # type: ignore[arg-type]
    pack.add("supply-chain/signature.json", facts)
    if not facts["verified"] and (facts["signed"] or facts["required"]):
        pack.gaps.append(f"supply-chain/signature.json: {facts['status']}: {facts['detail']}")
    bom = mlbom.build(src.model, src.number, src.definition, lineage, metrics.get("all") or {}, facts)
    pack.add("supply-chain/ml-bom.cdx.json", bom)
    return facts


def when(decision: dict[str, Any]) -> str:
    """When a decision was made: recorded_at (wall clock), else the time it judged at."""
    return str(decision.get("recorded_at") or decision.get("decided_at") or "")


def decisions_json(pack: Pack, src: Sources) -> list[dict[str, Any]]:
    """policy/decisions.json and policy/rego/: every recorded decision, and the exact policies."""
    decisions = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = _download(src, names.DECISIONS, Path(tmp))
        for path in sorted(folder.rglob("*.json")) if folder else []:
            try:
                decisions.append(json.loads(path.read_text(encoding="utf-8")))
            except ValueError:
                pack.gaps.append(f"policy/decisions.json: an unreadable decision record ({path.name})")
    decisions.sort(key=lambda d: (when(d), str(d.get("environment")), str(d.get("head_rev"))))
    sources: dict[str, str] = {}
    for decision in decisions:
        for policy in decision.get("policies", []):
            stored = f"policy/rego/{policy['sha256'][:12]}/{policy['path']}"
            sources[stored] = policy.pop("source", "")
            policy["file"] = stored
    for stored, text in sorted(sources.items()):
        pack.add(stored, text.encode())
    if not any(d.get("environment") == src.env for d in decisions):
        pack.gaps.append(
            f"policy/decisions.json: no recorded gate decision for {src.env} "
            "(expected `mlops gate --record` or `mlops check --record`)"
        )
    pack.add("policy/decisions.json", decisions)
    return decisions


CLAIMS = ("Approved-By", "Reviewed-By")


def approvals_json(pack: Pack, src: Sources, decisions: list[dict[str, Any]]) -> dict[str, Any]:
    """approvals.json: the approvals that count, which are only those the gate read from GitHub
    (its reviews, or its review event) when it decided, each a distinct code owner who neither
    promoted nor trained the version; beside them, the manifest's git history and the trailers
    its commits claim, which never count (whoever pushes writes them)."""
    path = f"{ENVIRONMENTS_DIR}/{src.env}/{src.model}.yaml"
    history = manifest_history(src.repo.root, path, src.number)
    seen = [
        {
            "environment": d["environment"],
            "decided_at": d["decided_at"],
            **(d.get("facts") or {}).get("approvals", {}),
        }
        for d in decisions
    ]
    recorded = [s for s in seen if s["environment"] == src.env and s.get("source") in ("github-api", "event")]
    trailers = [t for c in history for t in c["trailers"] + ((c["merge"] or {}).get("trailers") or [])]
    approvals = {
        "counted": recorded[-1] if recorded else None,
        "gate": seen,
        "git": history,
        "codeowners": codeowners(src.repo.root, path),
        "claimed_in_git": sorted(
            {t["value"] for t in trailers if t["key"] in ("Approved-By", "Reviewed-By")}
        ),
        "note": "Only approvals the gate read from GitHub at decision time count; trailers in commit "
        "messages are listed as claims and never counted.",
    }
    if approvals["counted"] is None:
        pack.gaps.append(
            f"approvals.json: no approval the gate read from GitHub for {src.env} "
            "(trailers in git are claims, not counted)"
        )
    pack.add("approvals.json", approvals)
    return approvals


def deployments_json(pack: Pack, src: Sources, decisions: list[dict[str, Any]]) -> dict[str, Any]:
    """deployments.json: every record of the model in the environment, the version's registry
    history; and the findings: deployments the gate's last decision before them had denied."""
    records, skipped = RecordLog(src.repo.root).read(src.env, src.model)
    mine = [r for r in records if src.number in (r.version, r.previous)]
    rollbacks = [r for r in records if r.result == Result.ROLLED_BACK and r.previous == src.number]
    this_version = {
        "deployments": sum(1 for r in mine if r.result == Result.HEALTHY and r.version == src.number),
        "rollbacks": len(rollbacks),
        "recovery_s": [r.recovery_s for r in rollbacks],
        "break_glass": [r.__dict__ for r in mine if r.result == Result.BREAK_GLASS],
    }
    document = {
        "records": [r.__dict__ for r in records],
        # break-glass holds placed and ended (by git agreeing, or `mlops resume`), with who and why
        "holds": RecordLog(src.repo.root).entries(src.env, src.model, "hold"),
        "unreadable_lines": skipped,
        "registry_history": names.history_of(src.tags),
        "this_version": this_version,
    }
    if not mine:
        pack.gaps.append(
            f"deployments.json: no deployment record of v{src.number} in {src.env} on this machine"
        )
    for record in records:
        if record.result != Result.HEALTHY or record.version != src.number:
            continue
        before = [d for d in decisions if d.get("environment") == src.env and when(d) <= record.at]
        if before and before[-1].get("outcome") == "deny":
            rules = sorted({f["rule"] for f in before[-1].get("findings", []) if f["kind"] == "failure"})
            pack.findings.append(
                f"v{src.number} was deployed to {src.env} at {record.at} by {record.by} although the gate's "
                f"last decision ({when(before[-1])}) denied it: {', '.join(rules)}"
            )
    pack.add("deployments.json", document)
    return document


def history_json(pack: Pack, src: Sources) -> list[dict[str, Any]]:
    """history.json: the version's stretches of `mlops history` (where it served, whole or as a
    canary, and why), with the analysed canary's verdicts and the rollbacks."""
    from ..deploy.history import history

    told = history(src.repo, src.registry, src.model, src.env)
    mine = [s for s in told["stretches"] if src.number in [v for v, _ in s["routing"]]]
    if not mine:
        pack.gaps.append(
            f"history.json: v{src.number} has no stretch of serving in {src.env} on this machine"
        )
    pack.add("history.json", {"stretches": mine, "gaps": told["gaps"]})
    return mine


def monitoring_json(pack: Pack, src: Sources) -> dict[str, Any]:
    """monitoring/: drift and live-performance history of the version, their last reports, and
    how much traffic it answered (the inference log itself stays out: size, personal data)."""
    log = RecordLog(src.repo.root)
    drift = [e for e in log.entries(src.env, src.model, "drift") if e.get("version") == src.number]
    performance = [
        e
        for e in log.entries(src.env, src.model, "feedback")
        if any(v.get("version") == src.number for v in e.get("versions") or [])
    ]
    kept: dict[str, list[str]] = {"drift": [], "feedback": []}
    for kind, history in (("drift", drift), ("feedback", performance)):
        for entry in history[-5:]:
            for key in ("report_html", "report_json"):
                source = Path(entry.get(key) or "")
                source = source if source.is_absolute() else src.repo.root / source
                if entry.get(key) and source.is_file():
                    pack.add(f"monitoring/{kind}/{source.name}", source.read_bytes())
                    kept[kind].append(f"monitoring/{kind}/{source.name}")
    model_tags = src.registry.model_tags(src.model)
    document = {
        "drift": names.drift_of(model_tags, src.env),
        "drift_history": drift,
        "drift_reports": kept["drift"],
        "performance_reports": kept["feedback"],
        "performance": names.performance_of(model_tags, src.env),
        "performance_history": performance,
        "inferences": inferences(src.repo.root, src.env, src.model, src.number),
    }
    if not drift:
        pack.gaps.append(f"monitoring/: no drift check of v{src.number} in {src.env} on record")
    pack.add("monitoring/summary.json", document)
    return document


def inferences(root: Path, env: str, model: str, version: int) -> dict[str, Any]:
    """How many requests of the version the log holds (failed ones counted apart) and how many
    rows it answered, when, and the log's sha256."""
    path = state.inference_log(root, env, model)
    if not path.is_file():
        return {"log": None, "requests": 0, "failed": 0, "rows": 0, "first": None, "last": None}
    log = inference_log.read(path)
    mine = [e for e in log.entries if e.version == version]
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return {
        "log": path.name,
        "sha256": digest,
        "requests": len(mine),
        "failed": sum(1 for e in mine if not e.answered),
        "rows": sum(len(e.inputs) for e in mine if e.answered),
        "first": mine[0].at if mine else None,
        "last": mine[-1].at if mine else None,
        "unreadable_lines": log.skipped,
    }
