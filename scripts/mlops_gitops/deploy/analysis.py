"""The checks of an analysed canary, over a window of the inference log (pure: no processes).

A window is the log's entries written since the last judged analysis (`inference_log.read` from
the offset the last one ended at): every request of the canary and of the stable version, failed
ones included, as the inference log's rule says (a failure is traffic, but no answer). The checks,
after Flagger's and Argo Rollouts' metric analysis, plus two that judge the model itself:

    min_requests         the canary answered at least this many requests (else: no judgement)
    min_callers          ... from at least this many distinct callers (else: no judgement;
                         optional, where the log knows callers: the local target's servers)
    max_error_rate       the canary's share of failed requests
    max_latency_p99_ms   the canary's p99 prediction latency
    max_class_shift      the largest change in any predicted class's share, canary against stable
    max_score_psi        population stability index of the canary's scores against the stable's

The inference log is the source on both targets (the local server's log; under KServe, what its
logger sent `mlops collect`), so one rollout judges the same way everywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from ..core.inference_log import Entry

DEFAULT_CHECKS = {"min_requests": 50, "max_error_rate": 0.01}


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WAITING = "waiting"  # too few requests to judge: nothing is judged


PASS, FAIL, WAITING = Verdict.PASS, Verdict.FAIL, Verdict.WAITING


@dataclass
class Check:
    name: str
    value: float | None
    limit: float
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def answered_rows(entries: list[Entry]) -> list[Any]:
    """Every row's prediction of the answered requests."""
    found: list[Any] = []
    for entry in entries:
        if entry.answered and isinstance(entry.outputs, list):
            found.extend(entry.outputs)
    return found


def predicted_class(output: Any) -> str:
    """A row's class: the argmax of a score list, else the value itself."""
    if isinstance(output, list) and output and all(isinstance(v, int | float) for v in output):
        return str(max(range(len(output)), key=lambda i: output[i]))
    return str(output)


def score(output: Any) -> float | None:
    """A row's score: the last class's probability of a score list, or a number; None for a label."""
    if isinstance(output, list) and output and isinstance(output[-1], int | float):
        return float(output[-1])
    if isinstance(output, int | float) and not isinstance(output, bool):
        return float(output)
    return None


def class_shift(canary: list[Any], stable: list[Any]) -> float:
    def shares(rows: list[Any]) -> dict[str, float]:
        counts: dict[str, int] = {}
        for row in rows:
            label = predicted_class(row)
            counts[label] = counts.get(label, 0) + 1
        return {k: v / len(rows) for k, v in counts.items()}

    a, b = shares(canary), shares(stable)
    return max(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def psi(canary: list[float], stable: list[float], bins: int = 10) -> float:
    """Population stability index over quantile bins of the stable scores. PSI is biased upward
    on small samples (by about (bins - 1) * (1/n1 + 1/n2) with no shift at all), so a window
    gets one bin per 25 canary rows, 2 to `bins`, and each bin's share is smoothed by half a row."""
    import numpy as np

    bins = max(2, min(bins, len(canary) // 25))
    edges = np.unique(np.quantile(np.asarray(stable), np.linspace(0, 1, bins + 1))[1:-1])
    k = len(edges) + 1
    expected = np.bincount(np.searchsorted(edges, stable, side="right"), minlength=k)
    actual = np.bincount(np.searchsorted(edges, canary, side="right"), minlength=k)
    e = (expected + 0.5) / (len(stable) + 0.5 * k)
    a = (actual + 0.5) / (len(canary) + 0.5 * k)
    return float(np.sum((a - e) * np.log(a / e)))


def distinct_callers(entries: list[Entry]) -> int:
    return len({e.caller for e in entries if e.caller})


def callers(canary: list[Entry], stable: list[Entry]) -> dict[str, int] | None:
    """How many distinct callers sent each side's requests; None where the log knows none (KServe's
    logger does not say who called)."""
    if not any(e.caller for e in (*canary, *stable)):
        return None
    return {"canary": distinct_callers(canary), "stable": distinct_callers(stable)}


def judge(checks: dict[str, Any], canary: list[Entry], stable: list[Entry]) -> tuple[Verdict, list[Check]]:
    """(pass | fail | waiting, the checks). Waiting: fewer requests than min_requests on the
    canary (or, for the distribution checks, on the stable version): nothing is judged."""
    import numpy as np

    wanted = {**DEFAULT_CHECKS, **checks}
    needed = int(wanted["min_requests"])
    found = [Check("min_requests", float(len(canary)), needed, len(canary) >= needed)]
    distribution = "max_class_shift" in wanted or "max_score_psi" in wanted
    if len(canary) < needed or (distribution and len(stable) < needed):
        found[0].detail = f"canary {len(canary)}, stable {len(stable)} requests (expected {needed} each)"
        found[0].passed = False
        return WAITING, found
    if "min_callers" in wanted:  # one client's flood is not a sample: wait for more callers
        distinct = distinct_callers(canary)
        found.append(Check("min_callers", float(distinct), int(wanted["min_callers"]), True))
        if distinct < int(wanted["min_callers"]):
            found[-1].passed = False
            found[-1].detail = f"the canary's {len(canary)} requests came from {distinct} distinct callers"
            return WAITING, found
    failed = sum(1 for e in canary if not e.answered)
    rate = failed / len(canary)
    found.append(
        Check("max_error_rate", round(rate, 4), wanted["max_error_rate"], rate <= wanted["max_error_rate"])
    )
    if "max_latency_p99_ms" in wanted:
        latencies = [e.latency_ms for e in canary if e.answered]
        p99 = float(np.percentile(latencies, 99)) if latencies else math.inf
        limit = float(wanted["max_latency_p99_ms"])
        found.append(Check("max_latency_p99_ms", round(p99, 2), limit, p99 <= limit))
    rows_canary, rows_stable = answered_rows(canary), answered_rows(stable)
    if "max_class_shift" in wanted and rows_canary and rows_stable:
        shift = class_shift(rows_canary, rows_stable)
        limit = float(wanted["max_class_shift"])
        found.append(Check("max_class_shift", round(shift, 4), limit, shift <= limit))
    if "max_score_psi" in wanted:
        scores_canary = [s for s in map(score, rows_canary) if s is not None]
        scores_stable = [s for s in map(score, rows_stable) if s is not None]
        limit = float(wanted["max_score_psi"])
        if scores_canary and scores_stable:
            value = psi(scores_canary, scores_stable)
            found.append(Check("max_score_psi", round(value, 4), limit, value <= limit))
        else:
            found.append(Check("max_score_psi", None, limit, False, "no numeric scores to compare"))
    return (PASS if all(c.passed for c in found) else FAIL), found
