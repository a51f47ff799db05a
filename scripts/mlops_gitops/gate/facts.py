"""`mlops facts`: the policy input for every manifest a change touches.

One JSON document per changed `environments/<env>/<model>.yaml` between two git revisions,
the same shape everywhere (see DESIGN): the change, the manifest and its previous content,
the model definition, the registry facts of the proposed version, its history in other
environments, drift status and approvals. Policies never call out to the world: everything
they judge is here, so a decision can be replayed. Output is deterministic (sorted keys).

History and drift come from the deployment records and drift reports of the reconciler and
the monitor; until a record exists they say so ("unknown"), which the policies treat as
"not proven". Approvals come from the event payload of a pull_request_review, or from
GitHub's API through `gh` when it is authenticated; otherwise they are explicitly unknown.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..core import tags as names
from ..core import yamlio
from ..core.config import ENVIRONMENTS_DIR, Repo, placeholder_owners
from ..core.errors import MlopsError
from ..core.github import codeowners
from ..core.gitinfo import git
from ..registry.client import version_facts as registry_facts


class VersionSource(Protocol):
    def version(self, model: str, ref: str | int) -> Any: ...

    def model_tags(self, model: str) -> dict[str, str]: ...

    def signing_facts(self, model: str, version: int, env: str) -> dict[str, Any]: ...


def changed_manifests(root: Path, base: str, head: str) -> list[str]:
    out = git(root, "diff", "--name-only", "--no-renames", base, head, "--", ENVIRONMENTS_DIR)
    return sorted(p for p in out.splitlines() if p.endswith((".yaml", ".yml")) and p.count("/") == 2)


def default_base(root: Path) -> str:
    for candidate in (os.environ.get("GITHUB_BASE_REF", ""), "main"):
        if candidate:
            for ref in (f"origin/{candidate}", candidate):
                base = git(root, "merge-base", ref, "HEAD", check=False)
                if base:
                    return base
    return "HEAD~1"


def _at(root: Path, rev: str, path: str) -> Any:
    text = git(root, "show", f"{rev}:{path}", check=False)
    return yamlio.loads(text, f"{rev}:{path}") if text else None


def approvals(
    event: dict[str, Any] | None, fetch: Any = None, heads: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Who approved, from records the approvers control, for the commit being decided: the pull
    request's reviews from GitHub's API (via fetch: its reviews and its head now), read at
    decision time; else the review event, when it is the Actions runtime's own event for the
    head (`heads`: the commit decided, and the pull request's head when that is a merge commit);
    else unknown. Never a commit message or trailer, which whoever pushes writes.
    As GitHub's "dismiss stale pull request approvals": an approval given on an earlier commit
    does not count, and says so. With the pull request's author, who may not approve their own
    promotion."""
    pull = (event or {}).get("pull_request") or {}
    author = (pull.get("user") or {}).get("login")
    number = pull.get("number")
    if fetch is not None and number is not None:
        found = fetch(int(number))
        if found is not None:
            return {**_current_reviews(found["reviews"], found["head"]), "author": author}
    review = (event or {}).get("review")
    if review and str(review.get("state", "")).lower() == "approved":
        user = str((review.get("user") or {}).get("login"))
        why = _event_refused(event or {}, heads)
        if why is None:
            return {"known": True, "source": "event", "reviewers": [user], "author": author}
        return {
            "known": False,
            "source": "none",
            "reviewers": [],
            "author": author,
            "excluded": [{"user": user, "why": why}],
        }
    return {"known": False, "source": "none", "reviewers": [], "author": author}


def _current_reviews(reviews: list[dict[str, Any]], head: str) -> dict[str, Any]:
    """Each reviewer's latest review that decides (a comment does not undo an approval, as on
    GitHub); an approval counts only if it approved `head`."""
    latest: dict[str, dict[str, Any]] = {}
    for review in reviews:
        if review.get("state") in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[review["user"]["login"]] = review
    approved, stale = [], []
    for user, review in sorted(latest.items()):
        if review["state"] != "APPROVED":
            continue
        if review.get("commit_id") == head:
            approved.append(user)
        else:
            given = str(review.get("commit_id") or "an unknown commit")[:12]
            why = f"approved {given}, not the pull request's head {head[:12]} (a stale approval)"
            stale.append({"user": user, "why": why})
    return {"known": True, "source": "github-api", "reviewers": approved, "head": head, "excluded": stale}


def _event_refused(event: dict[str, Any], heads: frozenset[str]) -> str | None:
    """Why a review event does not count, or None when it does: it must be the event of the
    running Actions job ($GITHUB_EVENT_PATH's own content, a pull_request_review), and approve
    the pull request's head, which must be the commit decided."""
    runtime = os.environ.get("GITHUB_EVENT_PATH")
    if os.environ.get("GITHUB_ACTIONS") != "true" or not runtime:
        return "a review event outside a GitHub Actions run (expected the reviews from GitHub's API)"
    try:
        own = json.loads(Path(runtime).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        own = None
    if own != event:
        return "the event file is not this Actions run's own event ($GITHUB_EVENT_PATH)"
    if os.environ.get("GITHUB_EVENT_NAME") != "pull_request_review":
        return f"the run's event is {os.environ.get('GITHUB_EVENT_NAME')}, not pull_request_review"
    head = str(((event.get("pull_request") or {}).get("head") or {}).get("sha") or "")
    reviewed = str((event.get("review") or {}).get("commit_id") or "")
    if not head or reviewed != head:
        given, wanted = reviewed[:12] or "no commit", head[:12] or "(unknown)"
        return f"reviewed {given}, not the pull request's head {wanted}"
    if heads and head not in heads:
        return f"the pull request's head {head[:12]} is not the commit decided"
    return None


def judge_approvals(
    raw: dict[str, Any], owners: list[str], trained_by: str | None, members: Any = None
) -> dict[str, Any]:
    """The approvals that count: distinct reviewers, not the pull request's author (who
    promoted) nor whoever trained the version, and, when CODEOWNERS names owners for the
    manifest, each one an owner (named, or a member of an owning team by GitHub's API:
    `members(org/team)`, None when it cannot say). What did not count is listed with why."""
    author = (raw.get("author") or "").lower()
    trainer = (trained_by or "").lower()
    users = {o[1:].lower() for o in owners if o.startswith("@") and "/" not in o}
    teams = [o[1:] for o in owners if o.startswith("@") and "/" in o]
    approvers: list[str] = []
    excluded: list[dict[str, str]] = list(raw.get("excluded") or [])
    unverified: list[str] = []
    for user in sorted(set(raw.get("reviewers") or [])):
        if user.lower() == author:
            excluded.append({"user": user, "why": "opened the pull request (no self-approval)"})
        elif user.lower() == trainer:
            excluded.append({"user": user, "why": "trained the version"})
        elif not owners or user.lower() in users:
            approvers.append(user)
        else:
            rosters = [members(team) if members else None for team in teams]
            if any(r is not None and user.lower() in {m.lower() for m in r} for r in rosters):
                approvers.append(user)
            elif any(r is None for r in rosters):
                unverified.append(user)
            else:
                excluded.append({"user": user, "why": f"not a code owner ({' '.join(owners)})"})
    return {
        **raw,
        "approvers": approvers,
        "count": len(approvers),
        "excluded": excluded,
        "unverified": unverified,
        "codeowners": owners,
        "trained_by": trained_by,
    }


def gh_reviews(event: dict[str, Any] | None) -> Any:
    """A fetch function over GitHub's API when `gh` is installed and authenticated, else None."""
    from ..core import github

    repository = ((event or {}).get("repository") or {}).get("full_name")
    if not repository or not github.ready():
        return None
    client = github.GhCli()

    def fetch(number: int) -> Any:
        try:
            return {
                "reviews": github.reviews(client, repository, number),
                "head": github.pull_head(client, repository, number),
            }
        except MlopsError:
            return None

    return fetch


def gh_members() -> Any:
    """members(org/team): the team's logins by GitHub's API (a token that can read the
    organization's teams), None when it cannot say; None without an authenticated `gh`."""
    from ..core import github

    if not github.ready():
        return None
    client = github.GhCli()
    known: dict[str, list[str] | None] = {}

    def members(team: str) -> list[str] | None:
        if team not in known:
            try:
                known[team] = github.team_members(client, team)
            except MlopsError:
                known[team] = None
        return known[team]

    return members


def version_facts(
    registry: VersionSource, model: str, version: int | None
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The version's registry facts, and its history per environment (from the same tags)."""
    if version is None:
        return None, {}
    raw = registry.version(model, version)
    found = registry_facts(raw)
    lineage = found["lineage"]
    verdict = names.report_of(dict(raw.tags))
    report = {"passed": verdict["passed"], "baseline": verdict["baseline"]}
    facts = {
        "number": version,
        "metrics": found["metrics"],
        "lineage": {
            "commit": lineage.get("git.commit"),
            "dirty": lineage.get("git.dirty"),
            # the pipeline inputs (params, code, dvc.lock, the model definition) its commit did not hold
            "uncommitted": names.dirty_inputs(dict(raw.tags)),
            "data": lineage.get("data"),
            "params": lineage.get("params"),
            "device": lineage.get("device"),
            "dvc_lock_sha256": lineage.get("dvc.lock_sha256"),
            "runner": lineage.get("runner.name"),
            "trained_by": lineage.get("trained_by"),
        },
        "artifact_sha256": found["artifact_sha256"],
        "signature": found["signature"],
        "report": report,
        "fairness": fairness_facts(found["metrics"]),
        # A/B comparisons against the version it served beside (`mlops compare --record`)
        "compare": names.compare_of(dict(raw.tags)),
    }
    return facts, names.history_of(dict(raw.tags))


def fairness_facts(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """{feature: {demographic_parity_difference, equalized_odds_difference}} from the version's
    `fairness.<feature>.<metric>` metrics (empty when no sensitive feature was measured)."""
    found: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith("fairness.") and key.count(".") == 2:
            _, feature, name = key.split(".")
            found.setdefault(feature, {})[name] = value
    return dict(sorted(found.items()))


def build(
    repo: Repo,
    registry: VersionSource,
    base: str,
    head: str,
    now: str,
    event: dict[str, Any] | None = None,
    fetch: Any = None,
    members: Any = None,
) -> list[dict[str, Any]]:
    root = repo.root
    base_rev = git(root, "rev-parse", base)
    head_rev = git(root, "rev-parse", head)
    # the commit decided, or the pull request's head that a merge commit (refs/pull/N/merge, what
    # a pull request's checkout is) has as its second parent; never a plain commit's parent
    commit, *parents = git(root, "rev-list", "--parents", "-n", "1", head_rev).split()
    heads = frozenset([commit, *parents[1:]])
    approved = approvals(event, fetch, heads)  # once: GitHub's API and the event, whatever changed
    documents = []
    for path in changed_manifests(root, base_rev, head_rev):
        manifest, previous = _at(root, head_rev, path), _at(root, base_rev, path)
        if manifest is None:
            continue  # a removed manifest: nothing to promote (pruning is the reconciler's business)
        documents.append(
            document(
                repo,
                registry,
                path,
                manifest,
                previous,
                base_rev,
                head_rev,
                now,
                approved,
                members,
            )
        )
    return documents


def document(
    repo: Repo,
    registry: VersionSource,
    path: str,
    manifest: dict[str, Any],
    previous: dict[str, Any] | None,
    base_rev: str,
    head_rev: str,
    now: str,
    approved: dict[str, Any],
    members: Any = None,
) -> dict[str, Any]:
    """The policy input for one manifest (`path`, as environments/<env>/<model>.yaml) moving
    from `previous` (its content at base_rev) to `manifest`."""
    _, env, name = path.split("/")
    model = name.rsplit(".", 1)[0]
    if model not in repo.models:
        raise MlopsError(f"{path}: model {model!r} has no definition (expected models/{model}/model.yaml)")
    to_version = manifest.get("version")
    proposed, history = version_facts(registry, model, to_version)
    if proposed is not None:  # checked as the reconciler checks it before serving, for this env
        signing = registry.signing_facts(model, int(proposed["number"]), env)
        # The artifact hashed as it is stored now (from the same download): a changed artifact (or
        # a changed tag) differs.
        proposed["artifact_sha256_actual"] = signing.pop("sha256_actual")
        proposed["signing"] = signing
    last_env = repo.environments[-1]
    baseline_manifest = _at(repo.root, base_rev, f"{ENVIRONMENTS_DIR}/{last_env}/{model}.yaml") or {}
    baseline_version = baseline_manifest.get("version")
    baseline = None
    if baseline_version is not None and baseline_version != to_version:
        metrics = registry_facts(registry.version(model, baseline_version))["metrics"]
        baseline = {"environment": last_env, "version": baseline_version, "metrics": metrics}
    tags = registry.model_tags(model)
    return {
        "change": {
            "model": model,
            "environment": env,
            "path": path,
            "from_version": (previous or {}).get("version"),
            "to_version": to_version,
            "base_rev": base_rev,
            "head_rev": head_rev,
        },
        "manifest": manifest,
        "previous": previous,
        "model": repo.models[model],
        # owners in mlops.yaml that still name the template's placeholder organisation
        "project": {
            "placeholder_owners": [
                {"field": p.field, "found": p.problem} for p in placeholder_owners(repo.project)
            ]
        },
        "environment": next(e for e in repo.project["environments"] if e["name"] == env),
        "version": proposed,
        "history": history,
        "baseline": baseline,
        "drift": names.drift_of(tags, env),
        "performance": names.performance_of(tags, env),
        "approvals": judge_approvals(
            approved,
            codeowners(repo.root, path),
            ((proposed or {}).get("lineage") or {}).get("trained_by"),
            members,
        ),
        "now": now,
    }


def write(documents: list[dict[str, Any]], folder: Path) -> list[Path]:
    """One <env>--<model>.json per document under `folder`; their paths."""
    written = []
    for document in documents:
        change = document["change"]
        path = folder / f"{change['environment']}--{change['model']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def now_rfc3339(value: str | None) -> str:
    if value:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise MlopsError(
                f"--now {value!r}: not a time (expected RFC 3339, e.g. 2026-11-23T10:00:00Z)"
            ) from None
        return value
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
