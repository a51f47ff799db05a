"""The canary analysis's checks, on windows of log lines made here (pure functions, no processes)."""

from __future__ import annotations

import random

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
