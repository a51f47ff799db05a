"""`mlops promote`: promotion is a pull request that edits one environment manifest.

Checks first (model, environment, version in the registry), then commits the edited
environments/<env>/<model>.yaml on a new branch `promote/<model>-<env>-v<N>` made from the
default branch (main), whatever other branches exist (a merged or stale one of that name gets a
fresh name, `-2`, `-3`; one still open with the same edit is converged on), with the edit made
to the manifest as main has it, with a message naming model, version, environment and reason, and opens the
pull request with `gh` when it is installed and authenticated, else prints the exact next
step. The commit is made without touching the working tree; by default the branch is then
checked out (`checkout=False` leaves you where you were). Nothing is changed unless every
check passes; a re-run with the same arguments converges.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..core import tasks, yamlio
from ..core.config import Repo
from ..core.errors import MlopsError
from ..core.gitinfo import default_branch, git, show_file
from ..core.records import Routing
from ..core.tasks import ALL_PREDICTION_CHECKS, PREDICTION_CHECKS, Task
from .propose import propose

VERSION_LINE = re.compile(r"^version:[^\n]*$", re.MULTILINE)


@dataclass(frozen=True)
class Promotion:
    model: str
    environment: str
    version: int
    previous: int | None
    branch: str
    commit: str
    pull_request: str  # URL, or the command to run
    changed: bool
    checked_out: bool = False  # the working tree is now on `branch`
    base: str = ""  # the branch it was made from (where to go back to)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_version(repo: Repo, model: str, env: str, version: int | None, source: str | None) -> int:
    repo.require_model(model)
    if env not in repo.environments:
        raise MlopsError(f"environment {env!r}: not defined (expected one of {', '.join(repo.environments)})")
    if (version is None) == (source is None):
        raise MlopsError("promote: give exactly one of --version N or --from ENV")
    if source is not None:
        repo.require_environment(source, "--from")
        found = repo.manifests[(source, model)]["version"]
        if found is None:
            raise MlopsError(
                f"environments/{source}/{model}.yaml: version is null (expected a version to promote)"
            )
        return int(found)
    assert version is not None
    return version


# What `promote --rollout` writes when the manifest has no rollout settings of its own.
DEFAULT_ROLLOUT: dict[str, Any] = {
    "steps": [10, 25, 50],
    "interval": 60,
    "threshold": 2,
    "checks": {"min_requests": 50, "max_error_rate": 0.01, "max_class_shift": 0.1, "max_score_psi": 0.2},
}


def default_rollout(task: Task) -> dict[str, Any]:
    """The default rollout with the prediction checks that fit the model's task."""
    checks = {
        k: v
        for k, v in DEFAULT_ROLLOUT["checks"].items()
        if k not in ALL_PREDICTION_CHECKS or k in PREDICTION_CHECKS[task]
    }
    return {**DEFAULT_ROLLOUT, "checks": checks}


def edit_manifest(
    text: str,
    version: int,
    display: str,
    canary: int | None = None,
    rollout: bool = False,
    task: Task = Task.BINARY,
) -> str:
    """The manifest asking for `version` as its stable one, the whole traffic to it (a split and a
    shadow of that same version go); or, with `canary` (a percent), `version` beside the stable one
    as the challenger at that share; or, with `rollout`, `version` promoted by an analysed rollout
    (its settings kept, or the defaults)."""
    if len(VERSION_LINE.findall(text)) != 1:
        raise MlopsError(f"{display}: expected exactly one top-level `version:` line to edit")
    text = yamlio.replace_entry(text, "traffic", None)
    if canary is not None:
        text = yamlio.replace_entry(text, "rollout", None)
        canary_entry = yamlio.flow_entry("canary", {"version": version, "percent": canary})
        return yamlio.replace_entry(text, "canary", canary_entry)
    text = VERSION_LINE.sub(f"version: {version}", text, count=1)
    text = yamlio.replace_entry(text, "canary", None)
    loaded = yamlio.loads(text, display) or {}
    if rollout and not loaded.get("rollout"):
        text = yamlio.replace_entry(text, "rollout", yamlio.flow_entry("rollout", default_rollout(task)))
    shadow = loaded.get("shadow") or {}
    return yamlio.replace_entry(text, "shadow", None) if shadow.get("version") == version else text


def promote(
    repo: Repo,
    registry_has: Callable[[str, int], bool],
    model: str,
    env: str,
    version: int | None,
    source: str | None,
    reason: str,
    open_pr: bool = True,
    checkout: bool = True,
    canary: int | None = None,
    rollout: bool = False,
) -> Promotion:
    number = resolve_version(repo, model, env, version, source)
    if not registry_has(model, number):
        raise MlopsError(
            f"{model} v{number}: not in the registry (expected a registered version; "
            "see `mlops model list` and `mlops register`)"
        )
    repo.require_unit(env, model)
    path = repo.manifest_path(env, model)
    display = path.relative_to(repo.root).as_posix()
    root = repo.root
    start = default_branch(root)  # promotions start from it, whatever other branches exist
    current = git(root, "rev-parse", "--abbrev-ref", "HEAD")
    if current == start and git(root, "status", "--porcelain", "--", display):
        raise MlopsError(f"{display}: has uncommitted changes (expected a clean manifest to promote from)")
    text = show_file(root, start, display)
    if not text:
        raise MlopsError(f"{display}: not on {start} (expected the manifest committed there)")
    asked = yamlio.loads(text, f"{start}:{display}") or {}
    previous = asked.get("version")
    branch = f"promote/{model}-{env}-v{number}" + (f"-canary-{canary}" if canary is not None else "")
    named = title(model, env, number, canary)
    if canary is not None and asked.get("version") in (None, number):
        raise MlopsError(
            f"{display}: --canary needs a stable version beside v{number} "
            f"(expected {start} to ask for another version first; it asks for {previous})"
        )
    new_text = edit_manifest(text, number, display, canary, rollout, tasks.of(repo.require_model(model)))
    if Routing.of_manifest(yamlio.loads(new_text, display) or {}) == Routing.of_manifest(asked) and (
        bool(asked.get("rollout")) or not rollout
    ):
        return Promotion(
            model, env, number, previous, start, git(root, "rev-parse", start),
            f"{start} asks for v{number} already", changed=False, checked_out=current == start, base=current,
        )  # fmt: skip
    how = (
        f"Canary: v{number} at {canary}% beside the stable v{previous}\n"
        if canary is not None
        else ("Rollout: analysed (the manifest's rollout settings)\n" if rollout else "")
    )
    message = (
        f"{named}\n\n"
        f"Model: {model}\nVersion: {number} (was {previous if previous is not None else 'none'})\n"
        f"{how}Environment: {env}\nReason: {reason}\n"
    )
    made = propose(
        root,
        display,
        new_text,
        named,
        message,
        branch,
        checkout=checkout,
        open_pr=open_pr,
        start=start,
    )
    return Promotion(
        model,
        env,
        number,
        previous,
        made.branch,
        made.commit,
        made.pull_request,
        made.changed,
        made.checked_out,
        made.base,
    )


def title(model: str, env: str, version: int, canary: int | None = None) -> str:
    if canary is not None:
        return f"Canary {model} v{version} at {canary}% in {env}"
    return f"Promote {model} v{version} to {env}"
