"""The pull request's gate, whole: what `make policy` and `pr.yml` run, as one verb (`mlops gate`).

    1. the policies' own tests, with coverage (`mlops policy test --min-coverage`)
    2. the manifests and workflows against the policies (`mlops check`)
    3. the promotion gate: the facts of every manifest the branch changes (`mlops facts`),
       judged in the `promotion` namespace, each decision kept with its version (`--record`)
    4. what a change to policies/ would deny among what runs now (`mlops policy impact`)

The verdict of 3 and the table of 4 form the pull request's comment (markdown), written to the
workspace (`state.gate_comment`) for the workflow's comment step; nothing is written when there
is nothing to say. Every step runs even when one before it fails, so the comment shows all.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import state
from ..core.config import Repo
from ..core.errors import MlopsError
from ..registry.client import Registry
from . import facts, impact, policy


@dataclass
class Gate:
    tests: list[tuple[str, str, bool]] = field(default_factory=list)  # (package, rule, passed)
    coverage: float = 0.0
    min_coverage: float = 0.0
    untested: list[str] = field(default_factory=list)
    checked: policy.Run | None = None  # manifests and workflows
    promotions: policy.Run | None = None  # the changed manifests' facts
    facts: list[Path] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    impact: impact.Assessment | None = None
    comment: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def failed_tests(self) -> list[str]:
        return [f"{p}.{n}" for p, n, ok in self.tests if not ok]

    @property
    def ok(self) -> bool:
        failed = [r for r in (self.checked, self.promotions) if r and r.counts()["failure"]]
        return not (self.failed_tests or self.untested or self.coverage < self.min_coverage or failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tests": {
                "count": len(self.tests),
                "failed": self.failed_tests,
                "untested_packages": self.untested,
            },
            "coverage": {"percent": self.coverage, "minimum": self.min_coverage},
            "check": policy.to_conftest_json(self.checked.results) if self.checked else [],
            "promotions": policy.to_conftest_json(self.promotions.results) if self.promotions else [],
            "facts": [str(p) for p in self.facts],
            "recorded": self.recorded,
            "impact": self.impact.to_dict() if self.impact else None,
            "notes": self.notes,
        }


def run(
    repo: Repo,
    registry: Registry,
    base: str | None,
    head: str,
    now: str | None,
    event: dict[str, Any] | None = None,
    record: bool = False,
    min_coverage: float = 90.0,
) -> Gate:
    root = repo.root
    gate = Gate(min_coverage=min_coverage)
    files = policy.load_policies([root / "policies"], root)
    report = policy.Coverage()
    gate.tests = policy.verify(files, coverage=report)
    gate.coverage = report.percent()
    gate.untested = policy.untested_packages(files, gate.tests)
    gate.checked = policy.run(root, [])

    since = base or facts.default_base(root)
    moment = facts.now_rfc3339(now)
    folder = state.facts_dir(root)
    shutil.rmtree(folder, ignore_errors=True)
    documents = facts.build(
        repo, registry, since, head, moment, event, facts.gh_reviews(event), facts.gh_members()
    )
    gate.facts = [p.relative_to(root) for p in facts.write(documents, folder)]
    sections = []
    if gate.facts:
        judged = gate.promotions = policy.run(root, gate.facts, namespaces=["promotion"])
        sections.append(policy.to_markdown(judged.results))
        if record:
            from .decisions import record_decisions

            pairs = [(root / p, str(p)) for p in gate.facts]
            gate.recorded = record_decisions(
                registry, root, pairs, judged.results, judged.policy_files, judged.engine
            )
    else:
        gate.notes.append("no environment manifest changed: no promotion to judge")
    gate.impact = impact.assess(repo, registry, since, head, moment)
    if gate.impact.changed:
        sections.append(impact.to_markdown(gate.impact))
    gate.comment = "\n".join(sections)
    comment = state.gate_comment(root)
    if gate.comment:
        comment.parent.mkdir(parents=True, exist_ok=True)
        comment.write_text(gate.comment, encoding="utf-8")
    else:
        comment.unlink(missing_ok=True)
    return gate


def event_of(path: Path | None) -> dict[str, Any] | None:
    """The GitHub event payload, when there is one."""
    if path is None:
        return None
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MlopsError(f"{path}: not a GitHub event payload ({exc}; expected JSON)") from None
    return loaded if isinstance(loaded, dict) else None
