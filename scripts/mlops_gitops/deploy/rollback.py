"""`mlops rollback`: propose, as a commit, the whole routing of a deployment that served before.

A rollback returns to a point of the deployment's history, as `argocd app rollback APP ID` does
and a Kargo stage's freight history allows, never to "the manifest minus its last commit":

    default          the last routing that served healthy before the one serving now; or, when
                     git asks for something that does not serve (a failed or unapplied change),
                     what serves now
    --to-version N   the newest routing whose primary version was N
    --to-record ID   that deployment record's routing (`mlops history` names each record)

The points are the deployment records (on the machine where the deployments live); where there
are none, the manifest's history on the default branch's first-parent line (what each merge or
squash asked for), so a laptop can propose a rollback too. A routing is primary version, split,
shadow and rollout settings together; the rest of the manifest (resources, suspend, exceptions)
stays as the default branch has it. The commit goes on a fresh branch made from the default
branch, whatever other branches exist (or `--direct` on the current one); `--now` applies it
at once as a recorded break-glass event with a hold (holds.py), so that no reconciler undoes it
before git agrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import yamlio
from ..core.config import Repo
from ..core.errors import MlopsError
from ..core.gitinfo import default_branch, git, show_file
from ..core.health import Result
from ..core.records import DeploymentRecord, RecordLog, Routing
from .propose import propose

# What a rollback rewrites: which versions take traffic, which one mirrors it, how it rolls out.
ROUTING_KEYS = ("version", "canary", "traffic", "shadow", "rollout")
SERVED = (Result.HEALTHY, Result.ROLLED_BACK, Result.BREAK_GLASS)


@dataclass(frozen=True)
class Point:
    """One routing in the deployment's history, and where it was found."""

    routing: Routing
    source: str  # "record" or "git"
    ref: str  # the record's id, or the commit
    at: str
    healthy: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"routing": self.routing.to_dict(), "source": self.source, "ref": self.ref, "at": self.at}

    def said(self) -> str:
        return (
            f"record {self.ref} ({self.at})"
            if self.source == "record"
            else f"commit {self.ref[:12]} ({self.at})"
        )


def record_points(records: list[DeploymentRecord]) -> list[Point]:
    """What served, oldest first: each record that left a routing serving, except the steps of an
    analysed rollout (never a point to return to)."""
    points = []
    for record in records:
        routing = record.routing
        if record.result in SERVED and routing is not None and record.step is None:
            points.append(Point(routing, "record", record.id, record.at, record.result == Result.HEALTHY))
    return points


def git_points(root: Path, path: str, branch: str) -> list[Point]:
    """What the default branch asked for, oldest first: the manifest after each commit of its
    first-parent line that changed it (a merge or a squash counts once, whatever its branch held)."""
    points: list[Point] = []
    log = git(root, "log", "--first-parent", "--format=%H %cI", branch, "--", path, check=False)
    for line in reversed(log.splitlines()):
        commit, at = line.split(" ", 1)
        try:
            routing = Routing.of_manifest(yamlio.loads(show_file(root, commit, path), path) or {})
        except MlopsError:
            continue  # a commit whose manifest did not parse asked for nothing
        if routing is not None and (not points or points[-1].routing != routing):
            points.append(Point(routing, "git", commit, at))
    return points


def choose(
    points: list[Point], asked: Routing | None, to_version: int | None, to_record: str | None
) -> tuple[Point | None, Point]:
    """(what serves now, the point to return to)."""
    current = points[-1] if points else None
    if to_record is not None:
        found = [p for p in points if p.ref.startswith(to_record)] if len(to_record) >= 6 else []
        if len(found) != 1:
            raise MlopsError(
                f"--to-record {to_record!r}: {'ambiguous' if found else 'no such serving record'} "
                "(expected the id of a record that served, as `mlops history` shows it)"
            )
        return current, found[0]
    if to_version is not None:
        found = [p for p in points if p.routing.version == to_version and p.healthy]
        if not found:
            served = sorted({p.routing.version for p in points})
            raise MlopsError(
                f"--to-version {to_version}: never served here (expected one of "
                f"{', '.join(f'v{v}' for v in served) or 'none: nothing served yet'})"
            )
        return current, found[-1]
    if current is None:
        raise MlopsError("no earlier deployment to return to (expected one that served before)")
    if asked is not None and asked != current.routing and current.source == "record":
        return current, current  # git asks for what does not serve: back to what does
    earlier = [p for p in points[:-1] if p.healthy and p.routing != current.routing]
    if not earlier:
        raise MlopsError(
            f"nothing served before {current.routing.text()} (expected an earlier deployment to return to)"
        )
    return current, earlier[-1]


def with_routing(text: str, routing: Routing, display: str) -> str:
    """The manifest `text` asking for `routing`: its routing keys rewritten, the rest as it was."""
    challenger = routing.challenger
    entries = {
        "version": routing.version,
        # a split is written with its roles named: the stable `version`, the challenger beside it
        "canary": {"version": challenger[0], "percent": challenger[1]} if challenger else None,
        "traffic": None,
        "shadow": {"version": routing.shadow} if routing.shadow else None,
        "rollout": routing.rollout or None,
    }
    for key in ROUTING_KEYS:
        text = yamlio.replace_entry(text, key, yamlio.flow_entry(key, entries[key]))
    if Routing.of_manifest(yamlio.loads(text, display) or {}) != routing:
        raise MlopsError(
            f"{display}: cannot write the routing {routing.text()} (expected plain top-level keys)"
        )
    return text


def propose_rollback(
    repo: Repo,
    model: str,
    env: str,
    reason: str,
    direct: bool = False,
    open_pr: bool = True,
    to_version: int | None = None,
    to_record: str | None = None,
) -> dict[str, Any]:
    """Propose the routing of an earlier deployment of MODEL in ENV (see the module's docstring)."""
    repo.require_environment(env)
    path = repo.manifest_path(env, model)
    root, display = repo.root, path.relative_to(repo.root).as_posix()
    if not path.is_file():
        raise MlopsError(f"{display}: no such manifest (expected model {model!r} deployed in {env})")
    start = git(root, "rev-parse", "--abbrev-ref", "HEAD") if direct else default_branch(root)
    if git(root, "status", "--porcelain", "--", display) and (direct or start == _current(root)):
        raise MlopsError(f"{display}: has uncommitted changes (expected a clean manifest to roll back)")
    text = show_file(root, start, display)
    if not text:
        raise MlopsError(f"{display}: not on {start} (expected the manifest committed there)")
    asked = Routing.of_manifest(yamlio.loads(text, f"{start}:{display}") or {})
    records, _ = RecordLog(root).read(env, model)
    served = record_points(records)
    try:
        current, target = choose(served, asked, to_version, to_record)
    except MlopsError:
        if to_record is not None:
            raise
        # no such point in this machine's records (none here, or it served before they began):
        # what the default branch asked for, merge by merge
        current, target = choose(git_points(root, display, start), asked, to_version, None)
        current = served[-1] if served else current
    if asked == target.routing:
        raise MlopsError(
            f"{display}: {start} asks for {target.routing.text()} already (nothing to roll back in git)"
        )
    new_text = with_routing(text, target.routing, display)
    was = current.routing.text() if current else (asked.text() if asked else "nothing")
    change = f"{was} -> {target.routing.text()}"
    title = f"Roll back {model} in {env} to v{target.routing.version}"
    message = (
        f"{title}\n\nRouting: {change}\nReturns to: {target.said()}\n"
        f"Model: {model}\nEnvironment: {env}\nReason: {reason}\n"
    )
    made = propose(
        root,
        display,
        new_text,
        title,
        message,
        f"rollback/{model}-{env}-v{target.routing.version}",
        direct=direct,
        checkout=False,
        open_pr=open_pr,
        start=start,
    )
    return {
        "model": model,
        "environment": env,
        "from_version": current.routing.version if current else (asked.version if asked else None),
        "to_version": target.routing.version,
        "from": current.routing.to_dict() if current else None,
        "to": target.routing.to_dict(),
        "asked": asked.to_dict() if asked else None,
        "change": change,
        "returns_to": target.to_dict(),
        "branch": made.branch,
        "base": start,
        "commit": made.commit,
        "pull_request": made.pull_request,
        "changed": made.changed,
    }


def _current(root: Path) -> str:
    return git(root, "rev-parse", "--abbrev-ref", "HEAD")


def revert_last_promotion(
    repo: Repo, model: str, env: str, reason: str, direct: bool = False, open_pr: bool = True
) -> dict[str, Any]:
    """What the reconciler proposes after a failure: git back to what serves (the default)."""
    return propose_rollback(repo, model, env, reason, direct=direct, open_pr=open_pr)


def record_break_glass(repo: Repo, model: str, env: str, result: dict[str, Any], reason: str) -> None:
    target = Routing.from_dict(result["to"])
    RecordLog(repo.root).append(
        DeploymentRecord(
            model=model,
            environment=env,
            version=target.version,
            previous=result["from_version"],
            result=Result.BREAK_GLASS,
            revision=result["commit"],
            reason=f"rollback --now: {reason} ({result['change']}; review after the fact)",
            traffic=[{"version": v, "percent": p} for v, p in target.weights],
            shadow=target.shadow,
            rollout=target.rollout,
        )
    )
