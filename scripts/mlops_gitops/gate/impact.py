"""`mlops policy impact`: what a change to policies/ would do to what is deployed now.

A pull request that edits Rego shows reviewers the consequences, not just the diff: every
manifest as it stands on the base branch (and every workflow there) is judged twice, by the
policies at the base and by the policies at the head, on the same inputs. What differs is
the impact of the change:

* newly denied: the new policies deny a deployed version (or a workflow) for a reason the
  old ones did not give; the next promotion of it, or a re-check, would fail on it;
* newly allowed: denied before, allowed now (a relaxation reviewers should see too);
* changed: other differences (warnings added or removed, one of several denials lifted).

A deployed manifest is judged as it would be if it were promoted now (its facts built as
`mlops facts` builds them, from its own version). Approvals are unknown for a standing
deployment; the comparison between old and new is on identical inputs, so that only shows
where a rule about approvals changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..core import yamlio
from ..core.config import ENVIRONMENTS_DIR, Repo
from ..core.errors import MlopsError
from ..core.gitinfo import files_at, git
from . import facts, policy

POLICY_DIR = "policies"
WORKFLOWS_DIR = ".github/workflows"
UNKNOWN_APPROVALS = {"known": False, "source": "none", "reviewers": [], "count": 0}


@dataclass
class Impact:
    filename: str  # the manifest or workflow, as on the base branch
    namespace: str
    subject: str  # e.g. "churn v3 in production"
    status: str  # newly denied | newly allowed | changed | unchanged
    added: list[str] = field(default_factory=list)  # "kind rule: message" only the new policies give
    removed: list[str] = field(default_factory=list)  # ... only the old ones gave

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.filename,
            "namespace": self.namespace,
            "subject": self.subject,
            "status": self.status,
            "added": self.added,
            "removed": self.removed,
        }


@dataclass
class Assessment:
    base: str
    head: str
    changed: list[str]  # policy files changed between base and head
    impacts: list[Impact]
    notes: list[str] = field(default_factory=list)  # inputs that could not be built, and why

    def of(self, status: str) -> list[Impact]:
        return [i for i in self.impacts if i.status == status]

    def to_dict(self) -> dict[str, Any]:
        counts = {s: len(self.of(s)) for s in ("newly denied", "newly allowed", "changed", "unchanged")}
        return {
            "base": self.base,
            "head": self.head,
            "changed_policies": self.changed,
            "counts": counts,
            "impacts": [i.to_dict() for i in self.impacts if i.status != "unchanged"],
            "notes": self.notes,
        }


def changed_policies(root: Path, base: str, head: str) -> list[str]:
    out = git(root, "diff", "--name-only", "--no-renames", base, head, "--", POLICY_DIR)
    return sorted(p for p in out.splitlines() if p.endswith(".rego"))


def policies_at(root: Path, rev: str) -> list[policy.PolicyFile]:
    """The .rego files of policies/ as they are at `rev` (read from git, not the work tree)."""
    files = []
    for name, source in sorted(files_at(root, rev, POLICY_DIR, (".rego",)).items()):
        match = policy.PACKAGE.search(source)
        if not match:
            raise policy.PolicyError(f"{rev}:{name}:1: no package declaration (expected `package <name>`)")
        files.append(policy.PolicyFile(Path(name), f"{rev[:12]}:{name}", match.group(1), source))
    return files


def _documents_at(root: Path, rev: str, directory: str, suffixes: tuple[str, ...]) -> dict[str, Any]:
    return {
        name: yamlio.loads_data(text, f"{rev[:12]}:{name}")
        for name, text in sorted(files_at(root, rev, directory, suffixes).items())
    }


def standing_inputs(
    repo: Repo, registry: facts.VersionSource, base_rev: str, now: str
) -> tuple[list[tuple[str, str, str, Any]], list[str]]:
    """(namespace, filename, subject, input) for everything on the base branch, and notes
    on the inputs that could not be built (a registry that does not answer, say)."""
    inputs: list[tuple[str, str, str, Any]] = []
    notes: list[str] = []
    manifests = _documents_at(repo.root, base_rev, ENVIRONMENTS_DIR, (".yaml", ".yml"))
    for name, manifest in manifests.items():
        parts = PurePosixPath(name).parts
        if len(parts) != 3 or not isinstance(manifest, dict):
            continue
        env, model = parts[1], PurePosixPath(parts[2]).stem
        version = manifest.get("version")
        subject = f"{model} v{version} in {env}" if version is not None else f"{model} in {env} (none)"
        inputs.append(("manifests", name, subject, manifest))
        if version is None:
            continue
        try:
            document = facts.document(
                repo, registry, name, manifest, manifest, base_rev, base_rev, now, UNKNOWN_APPROVALS
            )
        except MlopsError as exc:
            notes.append(f"{name}: promotion policies not assessed: {exc}")
            continue
        inputs.append(("promotion", name, subject, document))
    for name, workflow in _documents_at(repo.root, base_rev, WORKFLOWS_DIR, (".yml", ".yaml")).items():
        inputs.append(("workflows", name, name, workflow))
    return inputs, notes


def _findings(result: policy.FileResult) -> set[str]:
    return {f"{f.kind} {f.rule}: {f.msg}" for f in result.findings if f.kind in ("failure", "warning")}


def compare(
    old: Sequence[policy.PolicyFile],
    new: Sequence[policy.PolicyFile],
    inputs: Sequence[tuple[str, str, str, Any]],
) -> list[Impact]:
    """Judge every input by both policy sets; classify what differs."""

    def judge(files: Sequence[policy.PolicyFile]) -> list[policy.FileResult | None]:
        packages = {f.package for f in files if not f.is_test}
        out: list[policy.FileResult | None] = []
        with policy.EmbeddedOpa([f for f in files if not f.is_test]) as opa:
            for namespace, filename, _, document in inputs:
                if namespace not in packages:
                    out.append(None)  # that namespace does not exist on this side: nothing to say
                    continue
                out.append(policy.results_for(namespace, opa.package(namespace, document), filename))
        return out

    impacts = []
    empty = policy.FileResult("", "")
    for (namespace, filename, subject, _), old_result, new_result in zip(
        inputs, judge(old), judge(new), strict=True
    ):
        before, after = _findings(old_result or empty), _findings(new_result or empty)
        added, removed = sorted(after - before), sorted(before - after)
        was_denied = any(f.startswith("failure ") for f in before)
        is_denied = any(f.startswith("failure ") for f in after)
        if any(f.startswith("failure ") for f in added):
            status = "newly denied"
        elif was_denied and not is_denied:
            status = "newly allowed"
        elif added or removed:
            status = "changed"
        else:
            status = "unchanged"
        impacts.append(Impact(filename, namespace, subject, status, added, removed))
    return impacts


def assess(repo: Repo, registry: facts.VersionSource, base: str, head: str, now: str) -> Assessment:
    root = repo.root
    base_rev = git(root, "rev-parse", base)
    head_rev = git(root, "rev-parse", head)
    changed = changed_policies(root, base_rev, head_rev)
    if not changed:
        return Assessment(base_rev, head_rev, [], [])
    inputs, notes = standing_inputs(repo, registry, base_rev, now)
    impacts = compare(policies_at(root, base_rev), policies_at(root, head_rev), inputs)
    return Assessment(base_rev, head_rev, changed, impacts, notes)


def differences(impact: Impact, separator: str = "; ") -> str:
    """What the new policies say that the old did not (+), and what they no longer say (-)."""
    return separator.join([*(f"+ {f}" for f in impact.added), *(f"- {f}" for f in impact.removed)])


def to_markdown(assessment: Assessment) -> str:
    """The pull-request comment's section: what the policy change would deny that runs now."""
    denied, allowed, changed = (assessment.of(s) for s in ("newly denied", "newly allowed", "changed"))
    verdict = f"⚠️ **{len(denied)} newly denied**" if denied else "✅ **nothing deployed is newly denied**"
    lines = [
        f"### Policy change impact: {verdict}",
        "",
        f"Changed: {', '.join(f'`{p}`' for p in assessment.changed)}. Everything on "
        f"`{assessment.base[:12]}` judged by the old and the new policies: "
        f"{len(denied)} newly denied, {len(allowed)} newly allowed, {len(changed)} with other findings, "
        f"{len(assessment.of('unchanged'))} unchanged.",
        "",
    ]
    rows = [*denied, *allowed, *changed]
    if rows:
        lines += ["| impact | deployment | file | what differs |", "| --- | --- | --- | --- |"]
        for impact in rows:
            cell = differences(impact, "<br>").replace("|", "\\|")
            lines.append(f"| {impact.status} | {impact.subject} | `{impact.filename}` | {cell} |")
        lines.append("")
    for note in assessment.notes:
        lines.append(f"> {note}")
    return "\n".join(lines).rstrip() + "\n"
