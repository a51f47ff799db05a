"""`mlops rollback`: the revert of the last promotion of one manifest, as a commit.

The revert is proposed like a promotion (`propose`): a branch and a pull request, or a commit
on the current branch (`--direct`). The last promotion is the newest commit that changed the
manifest's routing (version, traffic split, shadow); the rollback puts that routing back as it
was before it, so a canary's split goes with the version, and leaves the rest of the manifest
as it is now.

GitOps keeps git the source of truth even in an incident: rolling back is a commit that
restores the manifest's previous version (on a branch for review, or directly), and
`--now` applies it at once as a recorded break-glass event rather than a silent change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import yamlio
from .config import Repo
from .errors import MlopsError
from .gitinfo import git
from .propose import propose
from .records import DeploymentRecord, RecordLog

# What a promotion changes: which versions take traffic, and which one mirrors it.
ROUTING = ("version", "traffic", "shadow")


def _routing(text: str, where: str) -> dict[str, object]:
    loaded = yamlio.loads(text, where) or {}
    return {key: loaded.get(key) for key in ROUTING}


def last_promotion(root: Path, path: str) -> tuple[str, str, dict[str, object]]:
    """(commit, the manifest before it, its routing before it) of the newest commit that changed
    the manifest's routing: its version, traffic split or shadow."""
    for commit in git(root, "log", "--format=%H", "--", path).split():
        parent = git(root, "rev-parse", "--verify", "--quiet", f"{commit}^", check=False)
        if not parent:
            break
        before = git(root, "show", f"{parent}:{path}", check=False)
        after = git(root, "show", f"{commit}:{path}", check=False)
        if before and after and _routing(before, f"{parent}:{path}") != _routing(after, f"{commit}:{path}"):
            return commit, before, _routing(before, f"{parent}:{path}")
    raise MlopsError(f"{path}: no earlier promotion in git history (expected a commit that changed version)")


def revert_last_promotion(
    repo: Repo, model: str, env: str, reason: str, direct: bool = False, open_pr: bool = True
) -> dict[str, Any]:
    repo.require_environment(env)
    if (env, model) not in repo.manifests:
        raise MlopsError(
            f"environments/{env}/{model}.yaml: no such manifest (expected model {model!r} deployed in {env})"
        )
    root = repo.root
    display = f"environments/{env}/{model}.yaml"
    if git(root, "status", "--porcelain", "--", display):
        raise MlopsError(f"{display}: has uncommitted changes (expected a clean manifest to roll back)")
    commit, earlier, routing = last_promotion(root, display)
    before = routing["version"]
    current = repo.manifests[(env, model)].get("version")
    if before is None:
        raise MlopsError(
            f"{display}: the last promotion ({commit[:8]}) was the first "
            "(expected an earlier version to roll back to)"
        )
    subject = git(root, "log", "-1", "--format=%s", commit)
    # the routing as it was before that commit (a canary's split and a shadow go too); the rest
    # of the manifest (resources, suspend, exceptions) stays as it is now
    new_text = (root / display).read_text(encoding="utf-8")
    for key in ROUTING:
        new_text = yamlio.replace_entry(new_text, key, earlier)
    if _routing(new_text, display) != routing:
        raise MlopsError(
            f"{display}: cannot restore the routing of {commit[:12]} (expected plain top-level keys)"
        )
    title = f"Roll back {model} in {env} to v{before}"
    message = (
        f"{title}\n\n"
        f"Reverts {commit[:12]} ({subject}).\nModel: {model}\nVersion: {before} (was {current})\n"
        f"Environment: {env}\nReason: {reason}\n"
    )
    branch = f"rollback/{model}-{env}-v{before}"
    if not direct and git(root, "branch", "--list", branch):
        raise MlopsError(f"branch {branch}: exists already (expected to delete it or merge it first)")
    made = propose(
        root, display, new_text, title, message, branch, direct=direct, checkout=False, open_pr=open_pr
    )
    return {
        "model": model,
        "environment": env,
        "from_version": current,
        "to_version": before,
        "reverts": commit,
        "branch": made.branch,
        "commit": made.commit,
        "pull_request": made.pull_request,
    }


def record_break_glass(repo: Repo, model: str, env: str, result: dict[str, Any], reason: str) -> None:
    RecordLog(repo.root).append(
        DeploymentRecord(
            model=model,
            environment=env,
            version=result["to_version"],
            previous=result["from_version"],
            result="break-glass",
            revision=result["commit"],
            reason=f"rollback --now: {reason} (reverts {result['reverts'][:12]}; review after the fact)",
        )
    )
