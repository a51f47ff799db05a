"""Evidence packs: what an auditor asks for about one deployed model version, in one zip.

`mlops evidence <model> --env E [--version N] -o pack.zip` gathers, for the version that runs
(or ran) in E:

* ``lineage.json``: data hashes, code commit, params, packages and Python, runner and device,
  the artifact's sha256 as registered and as stored now;
* ``metrics.json`` and ``report/``: evaluation metrics against the thresholds of
  ``model.yaml``, fairness, and the champion/challenger report (from the version's run);
* ``policy/decisions.json`` and ``policy/rego/``: every decision `mlops check --record` kept
  for the version, each with the sha256 of the policy files that made it, and those files;
* ``approvals.json``: approvals the gate saw (GitHub's API or the event payload), and the git
  history of the manifest: who committed and merged the change, ``Approved-by:`` and
  ``Reviewed-by:`` trailers, CODEOWNERS of the path;
* ``deployments.json``: every deployment record of the model in E (rollbacks with their
  ``recovery_s``, break-glass events) and the version's history from the registry;
* ``monitoring/``: the drift and live-performance history of the version and its drift reports;
* ``model-card.md``: ``models/<model>/card.md`` filled in from the facts above (a Jinja
  template: ``model``, ``version``, ``lineage``, ``metrics``, ``thresholds``, ``fairness``,
  ``environment``, ``deployment``, ``drift``, ``performance``, ``decisions``, ``approvals``);
* ``summary.html``: one self-contained page, the proof grouped by the controls it serves
  (shared/CONTROLS.md; the policies' METADATA names theirs);
* ``index.json``: the sha256 and size of every other file, the controls and the gaps.

The pack holds no clock reading of its own: the same inputs give the same bytes (sorted JSON,
fixed zip timestamps). `mlops evidence verify pack.zip` checks every file against the index,
that nothing was added or removed, and that the required files are there; the index's own
sha256 (printed by both commands) can be compared with one kept elsewhere (``--digest``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import yamlio
from .config import ENVIRONMENTS_DIR, MODELS_DIR, Repo
from .errors import ExitCode, MlopsError
from .facts import drift_facts, fairness_facts, performance_facts
from .gitinfo import git
from .lineage import TAG_PREFIX, from_tags
from .records import RecordLog, history_from_tags, state_dir, utcnow

FORMAT = "mlops-evidence/v1"
DECISIONS = "mlops/decisions"  # where `mlops check --record` keeps decisions in the version's run
REPORT = "mlops/report"
REQUIRED = (
    "lineage.json",
    "metrics.json",
    "policy/decisions.json",
    "approvals.json",
    "deployments.json",
    "monitoring/summary.json",
    "model-card.md",
    "summary.html",
)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
OVERSIGHT = {"policy/decisions.json", "approvals.json"}  # the controls a finding concerns prove with these
TRAILERS = re.compile(
    r"^(Approved-by|Reviewed-by|Acked-by|Signed-off-by):\s*(.+)$", re.MULTILINE | re.IGNORECASE
)

# shared/CONTROLS.md, as data: which files of the pack prove what.
CONTROLS: list[tuple[str, str, tuple[str, ...]]] = [
    ("EU AI Act", "Art. 9 risk management", ("metrics.json", "policy/decisions.json")),
    ("EU AI Act", "Art. 10 data and data governance", ("lineage.json",)),
    ("EU AI Act", "Art. 11 + Annex IV technical documentation", ("model-card.md",)),
    (
        "EU AI Act",
        "Art. 12 record-keeping",
        ("deployments.json", "policy/decisions.json", "monitoring/summary.json"),
    ),
    ("EU AI Act", "Art. 14 human oversight", ("approvals.json", "deployments.json")),
    (
        "EU AI Act",
        "Art. 15 accuracy, robustness, cybersecurity",
        ("metrics.json", "report/report.md", "lineage.json"),
    ),
    ("EU AI Act", "Art. 72 post-market monitoring", ("monitoring/summary.json",)),
    ("SR 11-7", "development and implementation", ("lineage.json",)),
    (
        "SR 11-7",
        "validation: ongoing monitoring, outcomes analysis",
        ("report/report.md", "monitoring/summary.json"),
    ),
    ("SR 11-7", "governance: inventory, documentation, controls", ("model-card.md", "policy/decisions.json")),
    ("NIST AI RMF 1.0", "GOVERN", ("policy/decisions.json",)),
    ("NIST AI RMF 1.0", "MAP", ("model-card.md",)),
    ("NIST AI RMF 1.0", "MEASURE", ("metrics.json", "monitoring/summary.json")),
    ("NIST AI RMF 1.0", "MANAGE", ("deployments.json",)),
    ("ISO/IEC 42001", "operation, monitoring, records", ("deployments.json", "monitoring/summary.json")),
]


class VerifyFailed(MlopsError):
    exit_code = ExitCode.FAILED


def canonical(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n").encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- decisions: written by `mlops check --record` -------------------------------------------


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
    files: Sequence[Path],
    results: Sequence[Any],
    policy_files: Sequence[Any],
    engine: str,
) -> list[str]:
    """Keep the decision on every facts document among `files` in its version's run."""
    kept = []
    for path in files:
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except ValueError:
            continue
        if not (isinstance(document, dict) and isinstance(document.get("change"), dict)):
            continue  # a manifest or a workflow, not a promotion's facts
        change = document["change"]
        if change.get("to_version") is None:
            continue
        mine = [r for r in results if Path(r.filename).resolve() == Path(path).resolve()]
        decision = decision_record(document, mine, policy_files, engine)
        stamp = re.sub(r"[^0-9TZ]", "", str(decision["decided_at"] or ""))
        name = f"{DECISIONS}/{change['environment']}/{stamp}-{str(change.get('head_rev') or '')[:12]}.json"
        run_id = registry.version(change["model"], change["to_version"]).run_id
        registry.log_text(run_id, canonical(decision).decode(), name)
        kept.append(
            f"{change['model']} v{change['to_version']} {change['environment']}: {decision['outcome']}"
        )
    return kept


# --- gathering --------------------------------------------------------------------------------


@dataclass
class Pack:
    model: str
    environment: str
    version: int
    files: dict[str, bytes] = field(default_factory=dict)
    gaps: list[str] = field(default_factory=list)  # evidence that should be there and is not
    findings: list[str] = field(default_factory=list)  # what the evidence shows went against policy
    documents: dict[str, Any] = field(default_factory=dict)  # the JSON files, as objects

    def add(self, path: str, data: bytes | Any) -> None:
        if isinstance(data, bytes):
            self.files[path] = data
        else:
            self.documents[path] = data
            self.files[path] = canonical(data)


def resolve_version(repo: Repo, registry: Any, model: str, env: str, version: int | None) -> int:
    """--version, else what the environment's alias points at, else the last version deployed."""
    if version is not None:
        registry.version(model, version)  # a clear error when it does not exist
        return version
    found = registry.alias_version(model, env)
    if found is not None:
        return int(found.version)
    records, _ = RecordLog(repo.root).read(env, model)
    for record in reversed(records):
        if record.version is not None:
            return int(record.version)
    raise MlopsError(
        f"{model} in {env}: no version runs or ran there (expected @{env} in the registry or a "
        "deployment record; or name one with --version)"
    )


def _time(value: Any) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(value) / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _lineage(raw: Any, actual: str | None) -> dict[str, Any]:
    tags = from_tags(dict(raw.tags))
    return {
        "model": raw.name,
        "version": int(raw.version),
        "run_id": raw.run_id,
        "source": raw.source,
        "registered_at": _time(raw.creation_timestamp),
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


def _thresholds(
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
            if limit is None:
                continue
            value = found.get(feature, {}).get(name)
            rows.append(
                {
                    "metric": f"{name} ({feature})",
                    "value": value,
                    "rule": f"<= {limit}",
                    "passed": value is not None and value <= limit,
                }
            )
    return rows


def _download(registry: Any, run_id: str, artifact: str, tmp: Path) -> Path | None:
    try:
        return registry.download(run_id, artifact, tmp)  # type: ignore[no-any-return]
    except MlopsError:
        return None


def _git_history(root: Path, env: str, model: str, version: int) -> list[dict[str, Any]]:
    """The commits (first parent, newest first) that set the manifest to `version`."""
    path = f"{ENVIRONMENTS_DIR}/{env}/{model}.yaml"
    out = git(root, "log", "--format=%H", "--", path, check=False)
    mainline = set(git(root, "rev-list", "--first-parent", "--merges", "HEAD", check=False).split())
    found = []
    for commit in out.split():
        text = git(root, "show", f"{commit}:{path}", check=False)
        before = git(root, "show", f"{commit}~1:{path}", check=False)
        try:
            now = (yamlio.loads(text, path) or {}).get("version") if text else None
            was = (yamlio.loads(before, path) or {}).get("version") if before else None
        except MlopsError:
            continue
        if now != version or was == version:
            continue
        fields = git(root, "show", "-s", "--format=%H%x00%an <%ae>%x00%aI%x00%cn <%ce>%x00%cI%x00%B", commit)
        sha, author, authored, committer, committed, body = fields.split("\x00", 5)
        found.append(
            {
                "commit": sha,
                "author": author,
                "authored_at": authored,
                "committer": committer,
                "committed_at": committed,
                "subject": body.strip().splitlines()[0] if body.strip() else "",
                "trailers": _trailers(body),
                "merge": _merge_of(root, commit, mainline),
            }
        )
    return found


def _merge_of(root: Path, commit: str, mainline: set[str]) -> dict[str, Any] | None:
    """The merge on HEAD's first-parent line (`mainline`: main's merges) that brought `commit`
    in, if a merge did; a merge of main into the branch ("Update branch") is not it."""
    candidates = git(
        root, "rev-list", "--ancestry-path", "--merges", "--reverse", f"{commit}..HEAD", check=False
    ).split()
    merge = next((c for c in candidates if c in mainline), None)
    if merge is None:
        return None
    sha, by, at, body = git(root, "show", "-s", "--format=%H%x00%cn <%ce>%x00%cI%x00%B", merge).split(
        "\x00", 3
    )
    return {
        "commit": sha,
        "by": by,
        "at": at,
        "subject": body.strip().splitlines()[0],
        "trailers": _trailers(body),
    }


def _trailers(body: str) -> list[dict[str, str]]:
    return [{"key": m.group(1).title(), "value": m.group(2).strip()} for m in TRAILERS.finditer(body)]


def _codeowners(root: Path, env: str, model: str) -> list[str]:
    """The owners CODEOWNERS gives the manifest (the last matching pattern wins, as on GitHub)."""
    target = f"{ENVIRONMENTS_DIR}/{env}/{model}.yaml"
    for candidate in (root / ".github" / "CODEOWNERS", root / "CODEOWNERS", root / "docs" / "CODEOWNERS"):
        if not candidate.is_file():
            continue
        owners: list[str] = []
        for line in candidate.read_text(encoding="utf-8").splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 2 and _owns(parts[0], target):
                owners = parts[1:]
        return owners
    return []


def _owns(pattern: str, path: str) -> bool:
    """CODEOWNERS (gitignore-style) matching, enough for paths of files."""
    import fnmatch

    if pattern in ("*", "/*", "**"):
        return True
    anchored = pattern.startswith("/") or "/" in pattern.rstrip("/")
    stem = pattern.strip("/")
    parts = path.split("/")
    candidates = [path] if anchored else ["/".join(parts[i:]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatchcase(c, stem) or c.startswith(stem + "/") or fnmatch.fnmatchcase(c, stem + "/*")
        for c in candidates
    )


def _jsonl(path: Path, keep: Any) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and keep(entry):
            found.append(entry)
    return found


def build(repo: Repo, registry: Any, model: str, env: str, version: int | None = None) -> Pack:
    definition = repo.require_model(model)
    repo.require_environment(env)
    number = resolve_version(repo, registry, model, env, version)
    raw = registry.version(model, number)
    pack = Pack(model, env, number)
    tags = dict(raw.tags)
    lineage = _lineage(raw, registry.artifact_digest(raw.source))
    if not lineage["artifact_unchanged"]:
        pack.gaps.append("lineage.json: the stored artifact no longer hashes to the registered sha256")
    pack.add("lineage.json", lineage)

    metrics = dict(from_tags(tags).get("metrics") or {})
    fairness = fairness_facts(metrics)
    registry_history = history_from_tags(tags)
    thresholds = _thresholds(definition, metrics, fairness)
    report_passed = tags.get(f"{TAG_PREFIX}report.passed") == "true"
    with tempfile.TemporaryDirectory() as tmp:
        report_dir = _download(registry, raw.run_id, REPORT, Path(tmp))
        report_files = sorted(p for p in report_dir.rglob("*") if p.is_file()) if report_dir else []
        for path in report_files:
            pack.add(f"report/{path.relative_to(report_dir).as_posix()}", path.read_bytes())  # type: ignore[arg-type]
        decisions_dir = _download(registry, raw.run_id, DECISIONS, Path(tmp) / "d")
        decisions = []
        for path in sorted(decisions_dir.rglob("*.json")) if decisions_dir else []:
            try:
                decisions.append(json.loads(path.read_text(encoding="utf-8")))
            except ValueError:
                pack.gaps.append(f"policy/decisions.json: an unreadable decision record ({path.name})")
    report_text = pack.files.get("report/report.md")
    registered_sha = tags.get(f"{TAG_PREFIX}report.sha256")
    report = {
        "passed": report_passed,
        "baseline": tags.get(f"{TAG_PREFIX}report.baseline"),
        "sha256_registered": registered_sha,
        "included": report_text is not None,
        "matches_registered": report_text is not None and sha256(report_text) == registered_sha,
    }
    if report_text is None:
        pack.gaps.append(
            "report/: no champion/challenger report in the version's run (expected `mlops register --report`)"
        )
    elif not report["matches_registered"]:
        pack.gaps.append("report/report.md: does not hash to the report.sha256 registered on the version")
    pack.add(
        "metrics.json",
        {
            "risk_tier": definition.get("risk_tier"),
            "primary": (definition.get("metrics") or {}).get("primary"),
            "metrics": {k: v for k, v in sorted(metrics.items()) if not k.startswith("fairness.")},
            "fairness": fairness,
            "thresholds": thresholds,
            "max_regression": (definition.get("metrics") or {}).get("max_regression"),
            "report": report,
        },
    )

    decisions.sort(key=lambda d: (_when(d), str(d.get("environment")), str(d.get("head_rev"))))
    sources: dict[str, str] = {}
    summary = []
    for decision in decisions:
        for policy in decision.get("policies", []):
            stored = f"policy/rego/{policy['sha256'][:12]}/{policy['path']}"
            sources[stored] = policy.pop("source", "")
            policy["file"] = stored
        summary.append(decision)
    for stored, text in sorted(sources.items()):
        pack.add(stored, text.encode())
    if not any(d.get("environment") == env for d in decisions):
        pack.gaps.append(
            f"policy/decisions.json: no recorded gate decision for {env} (expected `mlops check --record`)"
        )
    pack.add("policy/decisions.json", summary)

    history = _git_history(repo.root, env, model, number)
    seen = [
        {
            "environment": d["environment"],
            "decided_at": d["decided_at"],
            **(d.get("facts") or {}).get("approvals", {}),
        }
        for d in decisions
    ]
    approvers: list[str] = sorted(
        {
            t["value"]
            for c in history
            for t in c["trailers"] + ((c["merge"] or {}).get("trailers") or [])
            if t["key"] in ("Approved-By", "Reviewed-By")
        }
    )
    approvals = {
        "gate": seen,
        "git": history,
        "codeowners": _codeowners(repo.root, env, model),
        "approvers_from_git": approvers,
    }
    if (
        not any(s.get("known") for s in seen if s["environment"] == env)
        and not approvals["approvers_from_git"]
    ):
        pack.gaps.append(
            f"approvals.json: no approval known for {env} "
            "(GitHub reviews unavailable, no Approved-by trailer)"
        )
    pack.add("approvals.json", approvals)

    records, skipped = RecordLog(repo.root).read(env, model)
    mine = [r for r in records if r.version == number or r.previous == number]
    rollbacks = [r for r in records if r.result == "rolled-back" and r.previous == number]
    this_version: dict[str, Any] = {
        "deployments": sum(1 for r in mine if r.result == "healthy" and r.version == number),
        "rollbacks": len(rollbacks),
        "recovery_s": [r.recovery_s for r in rollbacks],
        "break_glass": [r.__dict__ for r in mine if r.result == "break-glass"],
    }
    deployments = {
        "records": [r.__dict__ for r in records],
        "unreadable_lines": skipped,
        "registry_history": registry_history,
        "this_version": this_version,
    }
    if not mine:
        pack.gaps.append(f"deployments.json: no deployment record of v{number} in {env} on this machine")
    pack.findings += _overrides(decisions, records, env, number)
    pack.add("deployments.json", deployments)

    state = state_dir(repo.root)
    drift_history = _jsonl(state / "drift" / env / f"{model}.jsonl", lambda e: e.get("version") == number)
    perf_history = _jsonl(
        state / "feedback" / env / f"{model}.jsonl",
        lambda e: any(v.get("version") == number for v in e.get("versions") or []),
    )
    reports: list[str] = []
    feedback_reports: list[str] = []
    for kind, history, kept in (
        ("drift", drift_history, reports),
        ("feedback", perf_history, feedback_reports),
    ):
        for entry in history[-5:]:
            for key in ("report_html", "report_json"):
                source = Path(entry.get(key) or "")
                source = source if source.is_absolute() else repo.root / source
                if entry.get(key) and source.is_file():
                    stored = f"monitoring/{kind}/{source.name}"
                    pack.add(stored, source.read_bytes())
                    kept.append(stored)
    model_tags = registry.model_tags(model)
    monitoring = {
        "drift": drift_facts(model_tags, env),
        "drift_history": drift_history,
        "drift_reports": reports,
        "performance_reports": feedback_reports,
        "performance": performance_facts(model_tags, env),
        "performance_history": perf_history,
        "inferences": _inferences(repo.root, env, model, number),
    }
    if not drift_history:
        pack.gaps.append(f"monitoring/: no drift check of v{number} in {env} on record")
    pack.add("monitoring/summary.json", monitoring)

    context = {
        "model": {"name": model, **definition},
        "version": {
            "number": number,
            "run_id": raw.run_id,
            "registered_at": lineage["registered_at"],
            "artifact_sha256": lineage["artifact_sha256"],
            "report_passed": report_passed,
            "report_baseline": report["baseline"],
        },
        "lineage": {
            "commit": lineage["code"]["commit"],
            "dirty": lineage["code"]["dirty"],
            "data": lineage["data"],
            "device": lineage["training"]["device"],
            "learner": lineage["training"]["learner"],
            "runner": lineage["runner"]["name"],
        },
        "metrics": metrics,
        "thresholds": thresholds,
        "fairness": fairness,
        "environment": env,
        "deployment": {
            "healthy_since": (registry_history.get(env) or {}).get("healthy_since"),
            "deployments": this_version["deployments"],
            "rollbacks": this_version["rollbacks"],
        },
        "drift": monitoring["drift"],
        "performance": monitoring["performance"],
        "decisions": [{k: d.get(k) for k in ("environment", "outcome", "decided_at")} for d in decisions],
        "approvals": ", ".join(approvers) or _approval_words(seen, env),
    }
    pack.add("model-card.md", render_card(repo, model, context).encode())
    pack.add("summary.html", render_summary(pack, context).encode())
    return pack


def _when(decision: dict[str, Any]) -> str:
    """When a decision was made: recorded_at (wall clock), else the time it judged at."""
    return str(decision.get("recorded_at") or decision.get("decided_at") or "")


def _overrides(decisions: list[dict[str, Any]], records: list[Any], env: str, number: int) -> list[str]:
    """Deployments of the version that the gate's last decision before them had denied."""
    found = []
    for record in records:
        if record.result != "healthy" or record.version != number:
            continue
        before = [d for d in decisions if d.get("environment") == env and _when(d) <= record.at]
        if before and before[-1].get("outcome") == "deny":
            rules = sorted({f["rule"] for f in before[-1].get("findings", []) if f["kind"] == "failure"})
            found.append(
                f"v{number} was deployed to {env} at {record.at} by {record.by} although the gate's "
                f"last decision ({_when(before[-1])}) denied it: {', '.join(rules)}"
            )
    return found


def _approval_words(seen: list[dict[str, Any]], env: str) -> str:
    for entry in reversed(seen):
        if entry["environment"] == env and entry.get("known"):
            return f"{entry.get('count', 0)} ({', '.join(entry.get('reviewers') or [])})"
    return "unknown (no GitHub review data, no Approved-by trailer)"


def _inferences(root: Path, env: str, model: str, version: int) -> dict[str, Any]:
    """How many requests and rows of the version the server answered and logged, when, and the
    log's sha256 (the log itself stays where it is: it can be large and hold personal data)."""
    from .records import inference_log
    from .serve import read_log

    path = inference_log(root, env, model)
    if not path.is_file():
        return {"log": None, "requests": 0, "rows": 0, "first": None, "last": None}
    entries, skipped = read_log(path)
    mine = [e for e in entries if e["version"] == version]
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()

    def stamp(entry: dict[str, Any] | None) -> str | None:
        return entry["at"].isoformat().replace("+00:00", "Z") if entry else None

    return {
        "log": path.name,
        "sha256": digest,
        "requests": len(mine),
        "rows": sum(len(e["inputs"]) for e in mine),
        "first": stamp(mine[0] if mine else None),
        "last": stamp(mine[-1] if mine else None),
        "unreadable_lines": skipped,
    }


def render_card(repo: Repo, model: str, context: dict[str, Any]) -> str:
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    path = repo.root / MODELS_DIR / model / "card.md"
    display = path.relative_to(repo.root).as_posix()
    if not path.is_file():
        raise MlopsError(
            f"{display}: missing (expected the model card template; `mlops model add` writes one)"
        )
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        return env.from_string(path.read_text(encoding="utf-8")).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise MlopsError(f"{display}:{exc.lineno}: {exc.message} (expected a Jinja template)") from None
    except jinja2.UndefinedError as exc:
        raise MlopsError(
            f"{display}: {exc.message} (expected one of: {', '.join(sorted(context))})"
        ) from None


def render_summary(pack: Pack, context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlops_gitops", "html"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        finalize=lambda value: "—" if value is None else value,
    )
    plots = {
        path.rsplit("/", 1)[-1].removesuffix(".png"): "data:image/png;base64,"
        + base64.b64encode(data).decode()
        for path, data in sorted(pack.files.items())
        if path.startswith("report/") and path.endswith(".png")
    }
    return env.get_template("evidence.html.j2").render(
        pack=pack,
        lineage=pack.documents["lineage.json"],
        metrics=pack.documents["metrics.json"],
        deployments=pack.documents["deployments.json"],
        approvals=pack.documents["approvals.json"],
        monitoring=pack.documents["monitoring/summary.json"],
        decisions=pack.documents["policy/decisions.json"],
        controls=controls(pack),
        card=context,
        plots=plots,
        files=[(p, sha256(d), len(d)) for p, d in sorted(pack.files.items())],
    )


def controls(pack: Pack) -> list[dict[str, Any]]:
    """Each control of CONTROLS.md with the pack's files that prove it, the policies that name
    it, and its status: evidenced; gap (a file it needs is missing or has a gap); or finding,
    for the controls over decisions and oversight when a deployment went against the gate."""
    policies: dict[str, set[str]] = {}
    for decision in pack.documents["policy/decisions.json"]:
        for policy in decision.get("policies", []):
            for control in policy.get("controls") or []:
                policies.setdefault(control, set()).add(policy.get("title") or policy["package"])
    rows = []
    for framework, control, paths in CONTROLS:
        gaps = [g for g in pack.gaps if any(g.startswith(p.split("/")[0]) for p in paths)]
        missing = [p for p in paths if p not in pack.files]
        named = sorted(
            {t for key, titles in policies.items() for t in titles if _same_control(key, framework, control)}
        )
        findings = pack.findings if OVERSIGHT & set(paths) else []
        rows.append(
            {
                "framework": framework,
                "control": control,
                "evidence": list(paths),
                "policies": named,
                "status": "finding" if findings else ("gap" if (missing or gaps) else "evidenced"),
                "notes": findings + [f"{p}: missing" for p in missing] + gaps,
            }
        )
    return rows


def _same_control(named: str, framework: str, control: str) -> bool:
    """Does a policy's METADATA control ("EU AI Act Art. 15", "SR 11-7 validation", "NIST AI
    RMF MEASURE") name this row? Its words must begin the row's, up to a word's end."""
    row = f"{framework.removesuffix(' 1.0')} {control}".lower()
    key = named.strip().lower()
    return row == key or (row.startswith(key) and row[len(key)] in " ,:")


# --- the zip -----------------------------------------------------------------------------------


def index(pack: Pack) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": pack.model,
        "environment": pack.environment,
        "version": pack.version,
        "files": [
            {"path": path, "sha256": sha256(data), "bytes": len(data)}
            for path, data in sorted(pack.files.items())
        ],
        "required": list(REQUIRED),
        "controls": controls(pack),
        "gaps": sorted(pack.gaps),
        "findings": pack.findings,
    }


def to_zip(pack: Pack) -> tuple[bytes, str]:
    """The pack as zip bytes (the same input, the same bytes) and the sha256 of its index."""
    document = canonical(index(pack))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path, data in [("index.json", document), *sorted(pack.files.items())]:
            info = zipfile.ZipInfo(path, date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue(), sha256(document)


def write(pack: Pack, out: Path) -> str:
    """Write the zip atomically (a killed run leaves no half pack); returns the index's sha256."""
    data, digest = to_zip(pack)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return digest


@dataclass
class Verdict:
    ok: bool
    problems: list[str]
    digest: str | None
    files: int
    gaps: list[str]


def verify(path: Path, digest: str | None = None) -> Verdict:
    """Integrity (every file hashes to its index entry, nothing added or removed) and
    completeness (every required file present); raises MlopsError for what is not a pack."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise MlopsError(f"{path}: not an evidence pack ({exc})") from None
    with archive:
        names = archive.namelist()
        if "index.json" not in names:
            raise MlopsError(
                f"{path}: index.json missing (expected an evidence pack made by `mlops evidence`)"
            )
        raw = archive.read("index.json")
        try:
            document = json.loads(raw)
        except ValueError as exc:
            return Verdict(False, [f"index.json: not JSON ({exc})"], sha256(raw), 0, [])
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            return Verdict(False, [f"index.json: format is not {FORMAT}"], sha256(raw), 0, [])
        problems = []
        if digest and sha256(raw) != digest:
            problems.append(f"index.json: sha256 {sha256(raw)} (expected {digest})")
        listed = {entry["path"]: entry for entry in document.get("files", [])}
        for name, entry in sorted(listed.items()):
            if name not in names:
                problems.append(f"{name}: missing from the pack (listed in index.json)")
                continue
            data = archive.read(name)
            if sha256(data) != entry.get("sha256"):
                problems.append(f"{name}: sha256 {sha256(data)} (expected {entry.get('sha256')}): altered")
        for name in sorted(set(names) - set(listed) - {"index.json"}):
            problems.append(f"{name}: not listed in index.json: added")
        for name in REQUIRED:
            if name not in listed:
                problems.append(f"{name}: required, not in the pack")
        if len(names) != len(set(names)):
            problems.append("the zip holds a file twice")
    return Verdict(not problems, problems, sha256(raw), len(listed), list(document.get("gaps", [])))
