"""Every name this project keeps in the MLflow registry, and the one writer and reader of each.

The registry is the store that the pull request's CI, the training runner and the reconciler
all reach, so the facts they pass each other live there as tags (and a few run artifacts).
Each family below has one writer and one reader; nothing else spells a tag name.

    family       where                         writer                   reader
    lineage      version tags mlops.*          lineage_tags             lineage_of
    artifact     mlops.artifact_sha256, ...    artifact_tags            artifact_of
    model        registered-model mlops.owner  model_tags               -
    report       mlops.report.* + artifacts    report_tags              report_of
    history      mlops.deploy.<env>.*          history_tags             history_of
    drift        model tags mlops.drift.<env>.*        drift_tags       drift_of
    performance  model tags mlops.performance.<env>.*  performance_tags performance_of
    decisions    run artifacts mlops/decisions/<env>/  decision_artifact DECISIONS
    compare      version tag mlops.compare.<env>       compare_tags     compare_of
    hold         model tag mlops.hold.<env>    holds.Holds.place        holds.Holds.get
    signing      mlops.signing.* + artifacts   signing_tags             signing_of
"""

from __future__ import annotations

import json
import re
from typing import Any

PREFIX = "mlops."
ARTIFACT_SHA256 = f"{PREFIX}artifact_sha256"
SIGNATURE = f"{PREFIX}signature"
FINGERPRINT = f"{PREFIX}fingerprint"
METRICS = f"{PREFIX}metrics"
DATA = f"{PREFIX}data"
# Run artifacts: the champion/challenger report's files, and every recorded gate decision.
REPORT = "mlops/report"
DECISIONS = "mlops/decisions"
MAX_TAG = 5000  # MLflow's limit on a tag value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# -- lineage: what a version was made from -----------------------------------------------------
def evidence_digest(env: str) -> str:
    """The version tag that keeps the index sha256 of its recent evidence packs in `env`."""
    return f"{PREFIX}evidence.{env}.index_sha256"


def evidence_digest_environment(key: str) -> str | None:
    """The environment an `evidence_digest` tag is for; None for any other tag."""
    head, tail = f"{PREFIX}evidence.", ".index_sha256"
    if not (key.startswith(head) and key.endswith(tail)):
        return None
    return key[len(head) : -len(tail)] or None


def lineage_tags(lineage: dict[str, Any]) -> dict[str, str]:
    """Flat version tags of a lineage document: scalars as text, structures as compact JSON."""
    fields: dict[str, Any] = {
        "git.commit": lineage["git"]["commit"],
        "git.branch": lineage["git"]["branch"],
        "git.dirty": lineage["git"]["dirty"],
        "dvc.lock_sha256": lineage["dvc_lock_sha256"],
        "data": lineage["data"],
        "params": lineage["params"],
        "metrics": lineage["metrics"],
        "device": lineage["training"]["device"],
        "device_name": lineage["training"]["device_name"],
        "learner": lineage["training"]["learner"],
        **({"classes": lineage["training"]["classes"]} if "classes" in lineage["training"] else {}),
        "runner.name": lineage["runner"]["name"],
        "runner.labels": lineage["runner"]["labels"],
        "python": lineage["python"],
        "packages": lineage["packages"],
        "fingerprint": lineage["fingerprint"],
    }
    if lineage["runner"].get("actor"):
        fields["trained_by"] = lineage["runner"]["actor"]
    if lineage["git"].get("untracked"):
        fields["git.untracked"] = lineage["git"]["untracked"]
    if lineage["git"].get("uncommitted"):  # the pipeline inputs its commit does not hold
        fields["git.uncommitted"] = lineage["git"]["uncommitted"]
    fields.update({f"metric.{name}": str(value) for name, value in lineage["metrics"].items()})
    return {PREFIX + key: _text(value) for key, value in fields.items()}


def lineage_of(tags: dict[str, str]) -> dict[str, Any]:
    """Every mlops.* tag of a version, JSON decoded, keyed without the prefix."""
    out: dict[str, Any] = {}
    for key, value in tags.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :]
        try:
            out[name] = json.loads(value) if value[:1] in "{[" else value
        except json.JSONDecodeError:
            out[name] = value
    return out


def dirty_inputs(tags: dict[str, str]) -> list[str]:
    """The pipeline inputs a version's commit did not hold when it was registered ([] for a clean
    lineage); a version from before this was recorded counts its untracked files."""
    found = lineage_of(tags)
    listed = found.get("git.uncommitted") or found.get("git.untracked") or []
    return sorted(listed) if isinstance(listed, list) else []


def fingerprint_query(model: str, fingerprint: str) -> str:
    """The registry search for the version a pipeline output already became."""
    return f"name = '{model}' and tags.`{FINGERPRINT}` = '{fingerprint}'"


# -- artifact: what was registered, byte for byte ----------------------------------------------
def classes_of(tags: dict[str, str]) -> list[Any] | None:
    """A classifier version's classes, in the order of its probabilities (None: a regressor, or
    a version registered before classes were recorded)."""
    value = tags.get(f"{PREFIX}classes")
    return json.loads(value) if value else None


def artifact_tags(sha256: str) -> dict[str, str]:
    return {ARTIFACT_SHA256: sha256, SIGNATURE: "true"}


def artifact_of(tags: dict[str, str]) -> dict[str, Any]:
    return {"sha256": tags.get(ARTIFACT_SHA256) or None, "signature": tags.get(SIGNATURE) == "true"}


def metrics_of(tags: dict[str, str]) -> dict[str, Any]:
    loaded = json.loads(tags.get(METRICS) or "{}")
    return loaded if isinstance(loaded, dict) else {}


def data_of(tags: dict[str, str]) -> dict[str, str] | None:
    """{path: md5} of the data the version's pipeline read (None when not recorded)."""
    return json.loads(tags[DATA]) if tags.get(DATA) else None


# -- signing: who made it (registry.signing writes the bundles; these tags only point at them) ----
SIGNING_BUNDLES = "mlops/signing"  # run artifacts: <model>-v<N>/model.sig, provenance/, provenance.sig


def signing_tags(folder: str, signer: str, method: str) -> dict[str, str]:
    """The version's signature: the run-artifact folder of its bundles and the signer it claims
    (a claim: verification reads the bundle, never these tags)."""
    return {
        f"{PREFIX}signing.bundle": folder,
        f"{PREFIX}signing.signer": signer,
        f"{PREFIX}signing.method": method,
    }


def signing_of(tags: dict[str, str]) -> dict[str, str] | None:
    """{bundle, signer, method} of a signed version; None for an unsigned one."""
    folder = tags.get(f"{PREFIX}signing.bundle")
    if not folder:
        return None
    return {
        "bundle": folder,
        "signer": tags.get(f"{PREFIX}signing.signer", ""),
        "method": tags.get(f"{PREFIX}signing.method", ""),
    }


# -- model: the registered model's own tags ----------------------------------------------------
def model_tags(definition: dict[str, Any]) -> dict[str, str]:
    return {f"{PREFIX}{key}": str(definition[key]) for key in ("owner", "risk_tier", "task")}


# -- report: the champion/challenger verdict on a version --------------------------------------
def report_tags(
    passed: bool, baseline: int | str | None, metrics: dict[str, Any], sha256: str
) -> dict[str, str]:
    return {
        f"{PREFIX}report.passed": "true" if passed else "false",
        f"{PREFIX}report.baseline": str(baseline or "none"),
        f"{PREFIX}report.metrics": json.dumps(metrics, sort_keys=True),
        f"{PREFIX}report.sha256": sha256,
    }


def report_of(tags: dict[str, str]) -> dict[str, Any]:
    """{passed (True/False/None when no report), baseline, sha256}."""
    return {
        "passed": {"true": True, "false": False}.get(tags.get(f"{PREFIX}report.passed", "")),
        "baseline": tags.get(f"{PREFIX}report.baseline"),
        "sha256": tags.get(f"{PREFIX}report.sha256"),
    }


def made_at_registration(tags: dict[str, str]) -> dict[str, str]:
    """A version's tags without what its life since wrote (deployments, evidence, comparisons):
    what a new registration of the same model carries."""
    later = tuple(f"{PREFIX}{family}." for family in ("deploy", "evidence", "compare"))
    return {k: v for k, v in tags.items() if not k.startswith(later)}


# -- history: a version's life in each environment (the reconciler's records, summarised) -------
HISTORY_FIELDS = ("deployed_at", "healthy_since", "healthy_until", "result", "rollbacks")


def history_tags(env: str, result: str, at: str, current: dict[str, str]) -> dict[str, str]:
    """The tags a deployment record of `result` at `at` leaves on a version in `env`, given its
    tags now: the soak clock (healthy_since) starts on health and stops on anything else."""
    prefix = f"{PREFIX}deploy.{env}."
    tags = {f"{prefix}result": result, f"{prefix}updated_at": at}
    if result == "healthy":
        tags[f"{prefix}deployed_at"] = current.get(f"{prefix}deployed_at") or at
        tags[f"{prefix}healthy_until"] = ""
        # A version that was rolled back, or replaced, and deployed again starts its soak over.
        if current.get(f"{prefix}result") != "healthy" or not current.get(f"{prefix}healthy_since"):
            tags[f"{prefix}healthy_since"] = at
    elif result == "replaced":  # a newer version took over: its healthy time ends here
        if current.get(f"{prefix}result") == "healthy":
            tags[f"{prefix}healthy_until"] = at
    else:
        tags[f"{prefix}healthy_since"] = ""
    if result == "rolled-back":
        tags[f"{prefix}rollbacks"] = str(int(current.get(f"{prefix}rollbacks") or 0) + 1)
    return tags


def history_of(tags: dict[str, str]) -> dict[str, dict[str, Any]]:
    """{env: {deployed_at, healthy_since, healthy_until, result, rollbacks}}: facts' input.history."""
    history: dict[str, dict[str, Any]] = {}
    prefix = f"{PREFIX}deploy."
    for key, value in tags.items():
        if not key.startswith(prefix):
            continue
        env, _, name = key.removeprefix(prefix).rpartition(".")
        entry = history.setdefault(env, {f: None for f in HISTORY_FIELDS} | {"rollbacks": 0})
        if name == "rollbacks":
            entry[name] = int(value or 0)
        elif name in entry:
            entry[name] = value or None
    return dict(sorted(history.items()))


# -- drift: the monitor's last word on a model in an environment (registered-model tags) -------
def drift_tags(
    env: str, status: str, severity: str | None, checked_at: str, columns: list[str], report: str
) -> dict[str, str]:
    prefix = f"{PREFIX}drift.{env}."
    return {
        f"{prefix}status": status,
        f"{prefix}severity": severity or "",
        f"{prefix}checked_at": checked_at,
        f"{prefix}columns": ",".join(columns),
        f"{prefix}report": report,
    }


def drift_of(tags: dict[str, str], env: str) -> dict[str, Any]:
    prefix = f"{PREFIX}drift.{env}."
    if f"{prefix}status" not in tags:
        return {"status": "unknown", "severity": None, "checked_at": None, "columns": []}
    return {
        "status": tags[f"{prefix}status"],
        "severity": tags.get(f"{prefix}severity") or None,
        "checked_at": tags.get(f"{prefix}checked_at") or None,
        "columns": sorted(c for c in tags.get(f"{prefix}columns", "").split(",") if c),
    }


# -- performance: live performance from ground truth (registered-model tags) --------------------
def performance_tags(
    env: str, status: str, metric: str, live: float | None, drop: float | None, checked_at: str
) -> dict[str, str]:
    prefix = f"{PREFIX}performance.{env}."
    return {
        f"{prefix}status": status,
        f"{prefix}metric": metric,
        f"{prefix}live": "" if live is None else str(live),
        f"{prefix}drop": "" if drop is None else str(drop),
        f"{prefix}checked_at": checked_at,
    }


def performance_of(tags: dict[str, str], env: str) -> dict[str, Any]:
    prefix = f"{PREFIX}performance.{env}."
    if f"{prefix}status" not in tags:
        return {"status": "unknown", "metric": None, "live": None, "drop": None, "checked_at": None}

    def number(key: str) -> float | None:
        return float(tags[key]) if tags.get(key) else None

    return {
        "status": tags[f"{prefix}status"],
        "metric": tags.get(f"{prefix}metric") or None,
        "live": number(f"{prefix}live"),
        "drop": number(f"{prefix}drop"),
        "checked_at": tags.get(f"{prefix}checked_at") or None,
    }


# -- compare: an A/B comparison of a challenger against the version beside it (version tags) -----
def compare_tags(env: str, summary: dict[str, Any]) -> dict[str, str]:
    """The challenger's verdict in `env` (`mlops compare --record`), as one JSON tag."""
    return {f"{PREFIX}compare.{env}": json.dumps(summary, sort_keys=True, separators=(",", ":"))}


def compare_of(tags: dict[str, str]) -> list[dict[str, Any]]:
    """Every environment's recorded comparison of this version, as the gate reads them."""
    found = []
    for key, value in sorted(tags.items()):
        if key.startswith(f"{PREFIX}compare.") and key.count(".") == 2:
            try:
                summary = json.loads(value)
            except ValueError:
                continue
            if isinstance(summary, dict):
                found.append({**summary, "environment": key.split(".")[2]})
    return found


# -- decisions: every gate decision on a version, kept in its run ------------------------------
def decision_artifact(env: str, decided_at: str | None, head_rev: str | None) -> str:
    stamp = re.sub(r"[^0-9TZ]", "", str(decided_at or ""))
    return f"{DECISIONS}/{env}/{stamp}-{str(head_rev or '')[:12]}.json"


def hold_tag(env: str) -> str:
    """The registered model's tag holding a break-glass hold in `env` (JSON; holds.py owns it)."""
    return f"mlops.hold.{env}"
