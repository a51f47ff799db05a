"""The canary analysis's checks, on windows of log lines made here (pure functions, no processes)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from mlops_gitops.analysis import FAIL, PASS, WAITING, judge, psi, read_window


def entries(version: int, scores: list[float], latency: float = 2.0, errors: int = 0) -> list[dict[str, Any]]:
    lines = [{"version": version, "outputs": [[1 - s, s]], "latency_ms": latency} for s in scores]
    return lines + [{"version": version, "outputs": [], "error": "boom", "latency_ms": 0.0}] * errors


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


def test_read_window_takes_whole_lines_and_starts_over_on_a_truncated_log(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    first = json.dumps({"version": 1, "outputs": [[0.5, 0.5]]}) + "\n"
    log.write_text(first + '{"version": 2, "outp')  # a line still being written
    found, offset = read_window(log, 0)
    assert [e["version"] for e in found] == [1] and offset == len(first)
    log.write_text(log.read_text() + 'uts": [], "role": "shadow"}\n' + "garbled\n")
    found, offset = read_window(log, offset)
    assert found == [] and offset == log.stat().st_size  # a shadow answer and a garbled line: not traffic
    log.write_text(first)  # rotated: shorter than where the window stood
    assert [e["version"] for e in read_window(log, offset)[0]] == [1]
