"""`mlops rollback`: the revert of the last promotion of one manifest, as a commit.

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
from .promote import edit_manifest, open_pull_request
from .records import DeploymentRecord, RecordLog


def _version_at(root: Path, rev: str, path: str) -> tuple[bool, int | None]:
    text = git(root, "show", f"{rev}:{path}", check=False)
    if not text:
        return False, None
    loaded = yamlio.loads(text, f"{rev}:{path}")
    return True, (loaded or {}).get("version")


def last_promotion(root: Path, path: str) -> tuple[str, int | None, int | None]:
    """(commit, version before it, version it set) of the newest commit that changed `version`."""
    for commit in git(root, "log", "--format=%H", "--", path).split():
        parent = git(root, "rev-parse", "--verify", "--quiet", f"{commit}^", check=False)
        if not parent:
            break
        existed, before = _version_at(root, parent, path)
        _, after = _version_at(root, commit, path)
        if existed and before != after:
            return commit, before, after
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
    commit, before, _after = last_promotion(root, display)
    current = repo.manifests[(env, model)].get("version")
    if before is None:
        raise MlopsError(
            f"{display}: the last promotion ({commit[:8]}) was the first "
            "(expected an earlier version to roll back to)"
        )
    subject = git(root, "log", "-1", "--format=%s", commit)
    branch_here = git(root, "rev-parse", "--abbrev-ref", "HEAD")
    branch = branch_here if direct else f"rollback/{model}-{env}-v{before}"
    new_text = edit_manifest((root / display).read_text(encoding="utf-8"), before, display)
    yamlio.loads(new_text, display)
    message = (
        f"Roll back {model} in {env} to v{before}\n\n"
        f"Reverts {commit[:12]} ({subject}).\nModel: {model}\nVersion: {before} (was {current})\n"
        f"Environment: {env}\nReason: {reason}\n"
    )
    if not direct:
        if git(root, "branch", "--list", branch):
            raise MlopsError(f"branch {branch}: exists already (expected to delete it or merge it first)")
        git(root, "switch", "--quiet", "-c", branch)
    try:
        yamlio.write_atomic(root / display, new_text)
        git(root, "add", "--", display)
        git(root, "commit", "--quiet", "-m", message)
    except BaseException:
        git(root, "checkout", "--quiet", "--", display, check=False)
        if not direct:
            git(root, "switch", "--quiet", branch_here, check=False)
            git(root, "branch", "--quiet", "-D", branch, check=False)
        raise
    made = git(root, "rev-parse", "HEAD")
    pull_request = (
        "committed directly"
        if direct
        else f"git push -u origin {branch} && gh pr create --head {branch} --fill"
    )
    if open_pr and not direct:
        pull_request = (
            open_pull_request(root, branch_here, branch, f"Roll back {model} in {env} to v{before}", message)
            or pull_request
        )
    if not direct:
        git(root, "switch", "--quiet", branch_here)
    return {
        "model": model,
        "environment": env,
        "from_version": current,
        "to_version": before,
        "reverts": commit,
        "branch": branch,
        "commit": made,
        "pull_request": pull_request,
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
