"""The plan, without processes: desired against live, one fixture per situation
(tests/engine/fixtures/reconcile/<case>.yaml: the manifests, what the target reports, the
registry's aliases, and the plan rows expected). After gitops-engine's testdata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mlops_gitops.core.health import Action, Health, Result, Sync
from mlops_gitops.deploy.reconcile import diff
from mlops_gitops.deploy.targets import Desired, Live

from .conftest import FIXTURES

CASES = sorted((FIXTURES / "reconcile").glob("*.yaml"))


def desired_of(entry: dict[str, Any]) -> Desired:
    env, model = entry["environment"], entry["model"]
    return Desired(
        model,
        env,
        f"environments/{env}/{model}.yaml",
        entry.get("version"),
        traffic=tuple(tuple(pair) for pair in entry.get("traffic", [])),  # type: ignore[misc]
        shadow=entry.get("shadow"),
        suspend=bool(entry.get("suspend", False)),
    )


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_the_plan_of_each_situation(case: Path) -> None:
    spec = yaml.safe_load(case.read_text())
    live = {(e["environment"], e["model"]): e for e in spec.get("live", [])}

    def observe(env: str, model: str) -> Live:
        found = live.get((env, model))
        if found is None:
            return Live(model, env, health=Health.MISSING, detail="no server")
        routing = tuple((int(v), int(p)) for v, p in found.get("routing", []))
        return Live(
            model,
            env,
            routing,
            found.get("shadow"),
            Health(found["health"]),
            "http://x",
            found.get("detail", ""),
        )

    running = [tuple(pair) for pair in spec.get("running", [])]
    invalid = {tuple(unit.split("/")): problem for unit, problem in spec.get("invalid", {}).items()}
    changes = diff(
        [desired_of(d) for d in spec["desired"]],
        observe,
        spec.get("aliases", {}),
        running,
        None,
        invalid=invalid,  # type: ignore[arg-type]
    )
    rows = sorted((c.row() for c in changes), key=lambda r: (r["environment"], r["model"]))
    expected = sorted(spec["expected"], key=lambda r: (r["environment"], r["model"]))
    assert len(rows) == len(expected), rows
    for row, wanted in zip(rows, expected, strict=True):
        assert {k: row[k] for k in wanted} == wanted, row
        if row["action"] == Action.INVALID:  # its one line, as the file's problem says
            assert row["detail"] == invalid[(row["environment"], row["model"])]
    for change in changes:  # typed, and the two axes consistent
        assert isinstance(change.action, Action) and isinstance(change.sync, Sync)
        assert (change.sync == Sync.SYNCED) == (change.action in (Action.UNCHANGED, Action.SUSPENDED))


def test_an_environment_filter_leaves_other_environments_alone() -> None:
    def observe(env: str, model: str) -> Live:
        return Live(model, env, ((1, 100),), health=Health.HEALTHY)

    assert diff([], observe, {}, [("staging", "old-model")], "production") == []


def test_health_is_ordered_and_results_know_what_failed() -> None:
    assert Health.DEGRADED.worse_than(Health.PROGRESSING) and Health.UNKNOWN.worse_than(Health.DEGRADED)
    assert not Health.HEALTHY.worse_than(Health.MISSING)
    assert [r for r in Result if not r.ok] == [Result.FAILED, Result.ROLLED_BACK, Result.INVALID]
    assert Action.INVALID.sync == Sync.UNKNOWN and Action.HELD.sync == Sync.OUT_OF_SYNC
    assert (
        Result.ROLLED_BACK == "rolled-back"
        and yaml.safe_dump({"r": str(Result.ROLLED_BACK)}) == "r: rolled-back\n"
    )
