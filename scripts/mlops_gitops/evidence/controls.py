"""The controls table (controls.yaml, data), and each control's status in one pack."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from ..core.errors import MlopsError


@dataclass(frozen=True)
class Control:
    framework: str
    control: str
    evidence: tuple[str, ...]
    oversight: bool  # over decisions and approvals: a deployment against the gate is a finding

    def named_by(self, name: str) -> bool:
        """Does a policy's METADATA control ("EU AI Act Art. 15", "SR 11-7 validation", "NIST AI
        RMF MEASURE") name this row? Its words must begin the row's, up to a word's end."""
        row = f"{self.framework.removesuffix(' 1.0')} {self.control}".lower()
        key = name.strip().lower()
        return row == key or (row.startswith(key) and row[len(key)] in " ,:")


@cache
def table() -> tuple[Control, ...]:
    text = resources.files("mlops_gitops.evidence").joinpath("controls.yaml").read_text("utf-8")
    rows = yaml.safe_load(text)
    try:
        return tuple(
            Control(r["framework"], r["control"], tuple(r["evidence"]), bool(r.get("oversight", False)))
            for r in rows
        )
    except (KeyError, TypeError) as exc:
        raise MlopsError(f"evidence/controls.yaml: {exc} (expected framework, control, evidence)") from None


def same_control(named: str, framework: str, control: str) -> bool:
    return Control(framework, control, (), False).named_by(named)


def statuses(
    files: set[str], gaps: list[str], findings: list[str], decisions: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each control with the pack's files that prove it, the policies that name it, and its
    status: evidenced; gap (a file it needs is missing or has a gap); or finding, for the
    controls over oversight when a deployment went against the gate."""
    policies: dict[str, set[str]] = {}
    for decision in decisions:
        for policy in decision.get("policies", []):
            for control in policy.get("controls") or []:
                policies.setdefault(control, set()).add(policy.get("title") or policy["package"])
    rows = []
    for row in table():
        found_gaps = [g for g in gaps if any(g.startswith(p.split("/")[0]) for p in row.evidence)]
        missing = [p for p in row.evidence if p not in files]
        named = sorted({t for key, titles in policies.items() for t in titles if row.named_by(key)})
        against = findings if row.oversight else []
        rows.append(
            {
                "framework": row.framework,
                "control": row.control,
                "evidence": list(row.evidence),
                "policies": named,
                "status": "finding" if against else ("gap" if (missing or found_gaps) else "evidenced"),
                "notes": against + [f"{p}: missing" for p in missing] + found_gaps,
            }
        )
    return rows
