"""Building packs: which version, then each file of the pack in turn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core import state
from ..core import tags as names
from ..core.config import Repo
from ..core.errors import MlopsError
from ..core.records import RecordLog
from . import gatherers
from .pack import Pack, write
from .render import card_context, render_card, render_summary


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


def build(repo: Repo, registry: Any, model: str, env: str, version: int | None = None) -> Pack:
    """The pack of `model`'s version in `env`, in memory (`write` makes the zip)."""
    definition = repo.require_model(model)
    repo.require_environment(env)
    number = resolve_version(repo, registry, model, env, version)
    src = gatherers.Sources(repo, registry, model, env, number, registry.version(model, number), definition)
    pack = Pack(model, env, number)
    lineage = gatherers.lineage_json(pack, src)
    metrics = gatherers.metrics_json(pack, src)
    decisions = gatherers.decisions_json(pack, src)
    approvals = gatherers.approvals_json(pack, src, decisions)
    deployments = gatherers.deployments_json(pack, src, decisions)
    monitoring = gatherers.monitoring_json(pack, src)
    gatherers.history_json(pack, src)
    gatherers.supply_chain(pack, src, lineage, metrics)
    context = card_context(src, lineage, metrics, decisions, approvals, deployments, monitoring)
    pack.add("model-card.md", render_card(repo, model, context).encode())
    pack.add("summary.html", render_summary(pack, context).encode())
    return pack


KEPT_DIGESTS = 20  # the index sha256 of the last packs built, per version and environment


def recorded_digests(registry: Any, model: str, env: str, version: int) -> list[str]:
    """The index sha256 of every pack of (model, version, env) built lately, as the registry
    keeps them (oldest first)."""
    return recorded_digests_of(registry.version(model, version), env)


def recorded_digests_of(version: Any, env: str) -> list[str]:
    """What a registry version's tag keeps of its packs' digests in `env`."""
    raw = dict(version.tags).get(names.evidence_digest(env), "[]")
    try:
        found = json.loads(raw)
    except ValueError:
        return []
    return [str(d) for d in found] if isinstance(found, list) else []


def anchored_by(registry: Any, models: list[str], digest: str) -> tuple[str, str, int] | None:
    """The (model, environment, version) whose recorded pack digests hold `digest`: the anchor
    found from the registry's side, never from what the pack says of itself."""
    for model in models:
        for version in registry.versions(model):
            for key in dict(version.tags):
                env = names.evidence_digest_environment(key)
                if env and digest in recorded_digests_of(version, env):
                    return model, env, int(version.version)
    return None


def remember_digest(registry: Any, pack: Pack, digest: str) -> None:
    """Keep the pack's own digest in the registry, where `evidence verify` checks it: a pack
    whose files and index.json were edited together then no longer matches."""
    kept = [d for d in recorded_digests(registry, pack.model, pack.environment, pack.version) if d != digest]
    kept = [*kept, digest][-KEPT_DIGESTS:]
    registry.set_tags(pack.model, pack.version, {names.evidence_digest(pack.environment): json.dumps(kept)})


def write_packs(
    repo: Repo,
    registry: Any,
    env: str,
    model: str | None,
    version: int | None = None,
    out: Path | None = None,
    every: bool = False,
) -> list[dict[str, Any]]:
    """`mlops evidence`: the pack of MODEL's version in ENV (to `out`, a zip), or with `every`
    one per model ENV runs (into `out`, a directory); what was written, gaps and findings."""
    if bool(model) == every:
        raise MlopsError("evidence: name one MODEL or pass --all (expected exactly one of them)")
    if every and version is not None:
        raise MlopsError("evidence: --version names one model's version (expected it without --all)")
    repo.require_environment(env)
    models = (
        [model]
        if model
        else sorted(m for (e, m), f in repo.manifests.items() if e == env and f.get("version"))
    )
    folder = out if every and out else state.evidence_dir(repo.root, env)
    written = []
    for name in models:
        pack = build(repo, registry, name, env, version)
        target = out if (out and not every) else folder / f"{name}-v{pack.version}.zip"
        digest = write(pack, target)
        remember_digest(registry, pack, digest)
        written.append(
            {
                "path": str(target),
                "model": pack.model,
                "environment": env,
                "version": pack.version,
                "index_sha256": digest,
                "files": len(pack.files) + 1,
                "gaps": sorted(pack.gaps),
                "findings": pack.findings,
            }
        )
    return written
