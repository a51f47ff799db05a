"""The canary analysis's checks, on windows of log lines made here (pure functions, no processes)."""

from __future__ import annotations

import random
from pathlib import Path

from mlops_gitops.core.inference_log import Entry, entry
from mlops_gitops.deploy.analysis import FAIL, PASS, WAITING, judge, psi

SPEC = {"model": "churn", "environment": "staging"}


def entries(version: int, scores: list[float], latency: float = 2.0, errors: int = 0) -> list[Entry]:
    answered = [
        entry(SPEC, f"r{i}", version, "primary", [{}], [[1 - s, s]], latency / 1000)
        for i, s in enumerate(scores)
    ]
    return answered + [entry(SPEC, f"e{i}", version, "primary", [{}], [], 0.0, "boom") for i in range(errors)]


def test_psi_stays_small_for_one_distribution_on_small_windows_and_large_for_a_shift() -> None:
    rng = random.Random(3)
    stable = [rng.betavariate(2, 5) for _ in range(240)]
    same = [rng.betavariate(2, 5) for _ in range(60)]
    shifted = [rng.betavariate(5, 2) for _ in range(60)]
    assert psi(same, stable) < 0.1  # plain 10-bin PSI reads ~0.2 here from sample size alone
    assert psi(shifted, stable) > 1.0


def test_judge_waits_passes_and_names_the_failing_checks() -> None:
    rng = random.Random(5)
    stable = entries(1, [rng.random() * 0.4 for _ in range(200)])
    good = entries(2, [rng.random() * 0.4 for _ in range(50)])
    checks = {"min_requests": 40, "max_error_rate": 0.02, "max_latency_p99_ms": 10, "max_class_shift": 0.1}
    assert judge(checks, good[:30], stable)[0] == WAITING
    assert judge(checks, good, stable[:30])[0] == WAITING  # the distribution checks need the stable side too
    verdict, found = judge(checks, good, stable)
    assert verdict == PASS and {c.name for c in found} == {
        "min_requests", "max_error_rate", "max_latency_p99_ms", "max_class_shift",
    }  # fmt: skip
    bad = entries(2, [0.9] * 45, latency=40.0, errors=5)
    verdict, found = judge(checks, bad, stable)
    failed = {c.name: c.value for c in found if not c.passed}
    assert verdict == FAIL and failed == {
        "max_error_rate": 0.1,
        "max_latency_p99_ms": 40.0,
        "max_class_shift": 1.0,
    }


def test_min_callers_waits_out_one_client_s_flood_and_the_record_counts_callers() -> None:
    from dataclasses import replace

    from mlops_gitops.deploy.analysis import callers

    rng = random.Random(7)
    stable = entries(1, [rng.random() * 0.4 for _ in range(100)])
    flood = [replace(e, caller="10.0.0.66") for e in entries(2, [0.9] * 100)]  # one client, shifted
    checks = {"min_requests": 50, "min_callers": 3, "max_class_shift": 0.1}
    verdict, found = judge(checks, flood, stable)
    assert verdict == WAITING and [c.name for c in found if not c.passed] == ["min_callers"]
    assert "from 1 distinct callers" in found[-1].detail
    spread = [replace(e, caller=f"10.0.0.{i % 5}") for i, e in enumerate(flood)]
    assert judge(checks, spread, stable)[0] == FAIL  # five callers: judged, and the shift fails it
    assert callers(spread, stable) == {"canary": 5, "stable": 0}
    assert callers(entries(2, [0.1]), stable) is None  # KServe's logger names no caller
    assert judge({"min_requests": 50}, flood, stable)[0] == PASS  # not asked for: not checked


def test_a_regressors_canary_is_judged_on_its_predictions_distribution() -> None:
    """A regressor answers one number per row: max_score_psi compares those numbers (its class
    shares would mean nothing, and `mlops validate` refuses max_class_shift for it)."""
    rng = random.Random(11)

    def answers(version: int, values: list[float]) -> list[Entry]:
        return [
            entry(SPEC, f"v{version}-{i}", version, "primary", [{}], [v], 0.002) for i, v in enumerate(values)
        ]

    stable = answers(1, [rng.gauss(40, 8) for _ in range(240)])
    checks = {"min_requests": 50, "max_score_psi": 0.2}
    assert judge(checks, answers(2, [rng.gauss(40, 8) for _ in range(80)]), stable)[0] == PASS
    verdict, found = judge(checks, answers(2, [rng.gauss(55, 8) for _ in range(80)]), stable)
    assert verdict == FAIL and next(c for c in found if c.name == "max_score_psi").value > 1.0


def test_a_multiclass_canary_is_judged_on_its_class_shares() -> None:
    rng = random.Random(13)

    def answers(version: int, favourite: int, share: float, n: int) -> list[Entry]:
        rows = []
        for i in range(n):
            top = favourite if rng.random() < share else rng.choice([0, 1, 2])
            probabilities = [0.1, 0.1, 0.1]
            probabilities[top] = 0.8
            rows.append(entry(SPEC, f"v{version}-{i}", version, "primary", [{}], [probabilities], 0.002))
        return rows

    stable = answers(1, 0, 0.5, 240)
    checks = {"min_requests": 50, "max_class_shift": 0.15}
    assert judge(checks, answers(2, 0, 0.5, 120), stable)[0] == PASS
    verdict, found = judge(checks, answers(2, 2, 0.9, 120), stable)
    assert verdict == FAIL and next(c for c in found if c.name == "max_class_shift").value > 0.4


def test_a_rollouts_prediction_checks_must_fit_the_models_task(repo: Path) -> None:
    """validate names a check that means nothing for the model's task; promote --rollout writes
    only those that fit it."""
    from mlops_gitops.core.config import collect
    from mlops_gitops.core.tasks import Task
    from mlops_gitops.deploy.promote import default_rollout

    model = repo / "models" / "churn" / "model.yaml"
    model.write_text(model.read_text().replace("task: binary-classification", "task: regression"))
    manifest = repo / "environments" / "staging" / "churn.yaml"
    rollout = (
        "rollout: {steps: [10, 50], checks: {min_requests: 50, max_class_shift: 0.1, max_score_psi: 0.2}}\n"
    )
    manifest.write_text(manifest.read_text() + rollout)
    _, problems, _ = collect(repo)
    said = [f"{p.path}: {p.field}: {p.problem} (expected {p.expected})" for p in problems]
    assert said == [
        "environments/staging/churn.yaml: rollout.checks.max_class_shift: set for a regression model "
        "(expected the prediction checks of its task: max_score_psi)"
    ]
    assert set(default_rollout(Task.REGRESSION)["checks"]) == {
        "min_requests",
        "max_error_rate",
        "max_score_psi",
    }
    assert set(default_rollout(Task.MULTICLASS)["checks"]) == {
        "min_requests",
        "max_error_rate",
        "max_class_shift",
    }
    assert set(default_rollout(Task.BINARY)["checks"]) >= {"max_class_shift", "max_score_psi"}


def test_compare_judges_a_regressors_predictions_by_their_median() -> None:
    """`mlops compare` on a regressor: the median prediction's shift with its interval (a class
    share of numbers would mean nothing)."""
    from mlops_gitops.core.tasks import Task
    from mlops_gitops.monitor.compare import predictions

    rng = random.Random(17)

    def answers(version: int, centre: float) -> list[Entry]:
        return [
            entry(SPEC, f"v{version}-{i}", version, "primary", [{}], [rng.gauss(centre, 1.0)], 0.002)
            for i in range(120)
        ]

    base = answers(1, 10.0)
    moved = predictions(base, answers(2, 12.0), Task.REGRESSION)
    assert moved is not None and moved["measure"] == "prediction_median" and moved["verdict"] == "differs"
    assert 1.5 < moved["difference"] < 2.5 and moved["ci_low"] > 1.0
    same = predictions(base, answers(2, 10.0), Task.REGRESSION)
    assert (
        same is not None and same["verdict"] == "no difference shown" and same["ci_low"] < 0 < same["ci_high"]
    )
