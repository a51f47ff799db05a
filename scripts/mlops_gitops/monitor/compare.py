"""`mlops compare MODEL --env E`: the versions that served side by side, compared with
confidence intervals (an A/B result).

It reads the inference log of E over the stretch where both versions answered (a canary split,
or an analysed rollout's steps) and, with `--labels`, the ground truth `mlops feedback` joins.
For each measure, the challenger minus the baseline, with a 95% interval:

    live metric   the model's `drift.live_performance.metric` (its task's default) on labelled
                  rows: a percentile bootstrap over the requests (scipy.stats.bootstrap)
    errors        the share of failed requests: Newcombe's interval for a difference of two
                  proportions (statsmodels confint_proportions_2indep)
    latency       the median's difference: a bootstrap interval; Mann-Whitney U's p-value beside it;
                  a difference under 0.5 ms or 10% of the baseline's median does not count
    predictions   a classifier: each class's share, a chi-square test of the two distributions
                  (scipy.stats.chi2_contingency), and the last class's Newcombe interval; a
                  regressor: the median prediction's difference (a bootstrap interval) and
                  Mann-Whitney U's p-value

A measure is better or worse only when its whole interval is on one side of zero; else it is
not enough data, with about how many more samples per version would settle a difference the
size of the one observed (the interval narrows as 1/sqrt(n)). The overall verdict: worse when
any of the live metric, errors or latency is worse; better when the live metric is better and
nothing is worse; else not enough data. `--record` keeps it as the challenger's registry tag
(`tags.compare_tags`), which the promotion gate reads as `input.version.compare`.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..core import inference_log, state, tasks
from ..core import tags as names
from ..core.config import Repo
from ..core.errors import MlopsError
from ..core.inference_log import Entry
from ..core.records import RecordLog, utcnow
from ..core.tasks import LOWER_IS_BETTER, Task
from ..deploy import analysis


class Verdict(StrEnum):
    BETTER = "better"
    WORSE = "worse"
    UNDECIDED = "not enough data"


BETTER, WORSE, UNDECIDED = Verdict.BETTER, Verdict.WORSE, Verdict.UNDECIDED
CONFIDENCE = 0.95
RESAMPLES = 2000


def _verdict(low: float, high: float, higher_is_better: bool, margin: float = 0.0) -> Verdict:
    """Better or worse when the whole interval is beyond `margin` on one side of zero (a
    difference smaller than the margin does not matter), else not enough data."""
    if low > margin:
        return BETTER if higher_is_better else WORSE
    if high < -margin:
        return WORSE if higher_is_better else BETTER
    return UNDECIDED


def _needed(n: int, low: float, high: float, diff: float, floor: float) -> int:
    """More samples per version for the interval's half-width to shrink below |diff| (or `floor`)."""
    half = (high - low) / 2
    target = max(abs(diff), floor)
    return max(0, math.ceil(n * (half / target) ** 2) - n) if half > 0 else 0


def _measure(
    name: str, diff: float, low: float, high: float, n: int, higher: bool, **extra: Any
) -> dict[str, Any]:
    margin = extra.pop("margin", 0.0)
    verdict = _verdict(low, high, higher, margin)
    floor = max(extra.pop("floor", 1e-3), margin)
    return {
        "measure": name,
        "difference": round(diff, 6),
        "ci_low": round(low, 6),
        "ci_high": round(high, 6),
        "confidence": CONFIDENCE,
        "samples": n,
        "verdict": verdict,
        "samples_needed": _needed(n, low, high, diff, floor) if verdict == UNDECIDED else 0,
        **({"margin": round(margin, 6)} if margin else {}),
        **extra,
    }


def errors(base: list[Entry], chal: list[Entry]) -> dict[str, Any]:
    from statsmodels.stats.proportion import confint_proportions_2indep

    fb, fc = sum(1 for e in base if not e.answered), sum(1 for e in chal if not e.answered)
    low, high = confint_proportions_2indep(
        fc, len(chal), fb, len(base), method="newcomb", alpha=1 - CONFIDENCE
    )
    diff = fc / len(chal) - fb / len(base)
    return _measure(
        "error_rate", diff, float(low), float(high), min(len(base), len(chal)), False, floor=0.005
    )


def _median_shift(a: Any, b: Any) -> tuple[float, float, float, float]:
    """b's median minus a's, its percentile-bootstrap interval, and Mann-Whitney U's p-value."""
    import numpy as np
    from scipy.stats import bootstrap, mannwhitneyu

    result = bootstrap(
        (b, a),
        lambda x, y, axis=-1: np.median(x, axis=axis) - np.median(y, axis=axis),
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        random_state=0,
        vectorized=True,
    )
    interval = result.confidence_interval
    p = float(mannwhitneyu(b, a).pvalue)
    return float(np.median(b) - np.median(a)), float(interval.low), float(interval.high), p


def latency(base: list[Entry], chal: list[Entry]) -> dict[str, Any] | None:
    import numpy as np

    a = np.array([e.latency_ms for e in base if e.answered])
    b = np.array([e.latency_ms for e in chal if e.answered])
    if len(a) < 2 or len(b) < 2:
        return None
    diff, low, high, p = _median_shift(a, b)
    return _measure(
        "latency_median_ms",
        diff,
        low,
        high,
        min(len(a), len(b)),
        False,
        mann_whitney_p=round(p, 6),
        margin=max(0.5, 0.1 * float(np.median(a))),  # a sub-millisecond or under-10% change does not matter
        floor=0.05,
    )


def predictions(base: list[Entry], chal: list[Entry], task: Task = Task.BINARY) -> dict[str, Any] | None:
    if task is Task.REGRESSION:
        return predicted_values(base, chal)
    from scipy.stats import chi2_contingency
    from statsmodels.stats.proportion import confint_proportions_2indep

    a = Counter(analysis.predicted_class(r) for r in analysis.answered_rows(base))
    b = Counter(analysis.predicted_class(r) for r in analysis.answered_rows(chal))
    classes = sorted(set(a) | set(b))
    if not a or not b:
        return None
    shares = {
        c: {"baseline": round(a[c] / sum(a.values()), 4), "challenger": round(b[c] / sum(b.values()), 4)}
        for c in classes
    }
    p = (
        float(chi2_contingency([[a[c] for c in classes], [b[c] for c in classes]])[1])
        if len(classes) > 1
        else 1.0
    )
    positive = classes[-1]
    low, high = confint_proportions_2indep(
        b[positive], sum(b.values()), a[positive], sum(a.values()), method="newcomb", alpha=1 - CONFIDENCE
    )
    diff = b[positive] / sum(b.values()) - a[positive] / sum(a.values())
    measured = _measure(
        f"share_of_class_{positive}",
        diff,
        float(low),
        float(high),
        min(sum(a.values()), sum(b.values())),
        True,
        chi_square_p=round(p, 6),
        shares=shares,
        floor=0.01,
    )
    measured["verdict"] = "differs" if p < 1 - CONFIDENCE else "no difference shown"
    return measured


def predicted_values(base: list[Entry], chal: list[Entry]) -> dict[str, Any] | None:
    """A regressor's predictions: the median's difference with a bootstrap interval."""
    import numpy as np

    def values(entries: list[Entry]) -> Any:
        found = [analysis.score(r) for r in analysis.answered_rows(entries)]
        return np.array([v for v in found if v is not None], dtype=float)

    a, b = values(base), values(chal)
    if len(a) < 2 or len(b) < 2:
        return None
    diff, low, high, p = _median_shift(a, b)
    measured = _measure(
        "prediction_median",
        diff,
        low,
        high,
        min(len(a), len(b)),
        True,
        mann_whitney_p=round(p, 6),
        floor=1e-6,
    )
    measured["verdict"] = "differs" if p < 1 - CONFIDENCE else "no difference shown"
    return measured


def live_metric(
    metric: str,
    base: list[Entry],
    chal: list[Entry],
    labels: dict[str, list[Any]],
    task: Task = Task.BINARY,
    classes: tuple[list[Any] | None, list[Any] | None] = (None, None),
) -> dict[str, Any] | None:
    """The live metric's difference on labelled rows, a bootstrap over requests; each side is
    measured with its own classes (`classes`: the baseline's, the challenger's)."""
    import numpy as np
    from scipy.stats import bootstrap

    from .feedback import MIN_LABELS, _output, live_value

    def joined(entries: list[Entry]) -> tuple[Any, Any]:
        y, s = [], []
        for entry in entries:
            truth, outputs = labels.get(entry.request_id), entry.outputs
            if truth and isinstance(outputs, list) and entry.answered:
                truth = truth * len(outputs) if len(truth) == 1 else truth
                for label, out in zip(truth, outputs, strict=False):
                    y.append(label)
                    s.append(_output(out))
        ys, ss = np.empty(len(y), dtype=object), np.empty(len(s), dtype=object)
        ys[:], ss[:] = y, s
        return ys, ss

    (ya, sa), (yb, sb) = joined(base), joined(chal)
    one_class = task.classifies and (len(set(ya)) < 2 or len(set(yb)) < 2)
    if min(len(ya), len(yb)) < MIN_LABELS or one_class:
        few = int(min(len(ya), len(yb)))
        return {
            "measure": metric,
            "verdict": UNDECIDED,
            "samples": few,
            "samples_needed": max(0, MIN_LABELS - few),
            "detail": "too few labelled rows",
        }

    def value(y: Any, s: Any, side: int) -> float:
        found = live_value(task, metric, list(y), list(s), classes[side])
        return float("nan") if found is None else found

    def statistic(i: Any, j: Any) -> float:
        return value(yb[i.astype(int)], sb[i.astype(int)], 1) - value(ya[j.astype(int)], sa[j.astype(int)], 0)

    result = bootstrap(
        (np.arange(len(yb)), np.arange(len(ya))),
        statistic,
        n_resamples=300,
        confidence_level=CONFIDENCE,
        method="percentile",
        random_state=0,
        vectorized=False,
    )
    diff = value(yb, sb, 1) - value(ya, sa, 0)
    low, high = (
        float(np.nan_to_num(result.confidence_interval.low)),
        float(np.nan_to_num(result.confidence_interval.high)),
    )
    return _measure(
        metric,
        diff,
        low,
        high,
        int(min(len(ya), len(yb))),
        metric not in LOWER_IS_BETTER,
        baseline_value=round(value(ya, sa, 0), 6),
        floor=0.005,
    )


def side_by_side(
    entries: list[Entry], baseline: int | None, challenger: int | None, stable: int | None = None
) -> tuple[int, int, list[Entry]]:
    """(baseline, challenger, the entries of the stretch where both answered). By default the
    two versions with the most requests; the baseline is the stable one (`stable`: the rollout's
    stable version, or a split's `version`), else the one that answered first."""
    counts = Counter(e.version for e in entries)
    if baseline is None or challenger is None:
        top = [v for v, _ in counts.most_common(2)]
        if len(top) < 2:
            raise MlopsError(
                f"inference log: {len(top)} version(s) answered (expected two that served side by side: "
                "a canary split or an analysed rollout)"
            )
        first = {v: next(e.at for e in entries if e.version == v) for v in top}
        top.sort(key=lambda v: (v != stable, first[v]))
        if baseline is None:
            baseline = next(v for v in top if v != challenger)
        if challenger is None:
            challenger = next(v for v in top if v != baseline)
    for name, version in (("--baseline", baseline), ("--challenger", challenger)):
        if not counts.get(version):
            raise MlopsError(
                f"{name}: v{version} answered no request in the log (expected one of {sorted(counts)})"
            )
    chal_at = [e.at for e in entries if e.version == challenger]
    start, end = min(chal_at), max(chal_at)
    window = [e for e in entries if start <= e.at <= end and e.version in (baseline, challenger)]
    return baseline, challenger, window


def classes(repo: Repo, model: str, versions: tuple[int, int]) -> tuple[list[Any] | None, list[Any] | None]:
    """Each version's classes (registry tags), for a classifier's live metric."""
    if not tasks.of(repo.require_model(model)).classifies:
        return None, None
    from ..registry.client import Registry

    task = tasks.of(repo.require_model(model))
    try:
        registry = Registry(repo)
        base, chal = (names.classes_of(dict(registry.version(model, v).tags)) for v in versions)
    except MlopsError:
        if task is Task.MULTICLASS:
            raise
        return None, None  # a binary classifier's 0/1 labels are read without them
    return base, chal


def _stable(repo: Repo, model: str, env: str) -> int | None:
    """The version a comparison is against by default: an analysed rollout's stable version,
    else the `version` of a manifest that splits traffic (the stable side of a split, beside its
    `canary`)."""
    from ..deploy import rollout

    progress = rollout.load(repo.root, env, model)
    if progress and progress.get("stable") is not None:
        return int(progress["stable"])
    manifest = repo.manifests.get((env, model)) or {}
    split = manifest.get("canary") or manifest.get("traffic")
    return int(manifest["version"]) if split and manifest.get("version") else None


def compare(
    repo: Repo,
    model: str,
    env: str,
    labels: dict[str, list[Any]] | None = None,
    since: datetime | None = None,
    baseline: int | None = None,
    challenger: int | None = None,
) -> dict[str, Any]:
    definition = repo.require_model(model)
    repo.require_environment(env)
    entries = inference_log.read(state.inference_log(repo.root, env, model), since).entries
    base_v, chal_v, window = side_by_side(entries, baseline, challenger, _stable(repo, model, env))
    base = [e for e in window if e.version == base_v]
    chal = [e for e in window if e.version == chal_v]
    task = tasks.of(definition)
    live = (definition.get("drift") or {}).get("live_performance") or {}
    metric = live.get("metric", tasks.DEFAULTS[task].live_metric)
    measures = [
        live_metric(
            metric,
            base,
            chal,
            labels,
            task,
            classes(repo, model, (base_v, chal_v)) if labels else (None, None),
        )
        if labels
        else {"measure": metric, "verdict": UNDECIDED, "detail": "no labels (expected --labels)"},
        errors(base, chal),
        latency(base, chal),
        predictions(base, chal, task),
    ]
    found = [m for m in measures if m is not None]
    judged = [m for m in found if m["measure"] in (metric, "error_rate", "latency_median_ms")]
    if any(m["verdict"] == WORSE for m in judged):
        verdict = WORSE
    elif judged[0]["verdict"] == BETTER:
        verdict = BETTER
    else:
        verdict = UNDECIDED
    return {
        "model": model,
        "environment": env,
        "baseline": base_v,
        "challenger": chal_v,
        "from": window[0].at if window else None,
        "to": window[-1].at if window else None,
        "requests": {"baseline": len(base), "challenger": len(chal)},
        "metric": metric,
        "measures": found,
        "verdict": verdict,
        "samples_needed": max((m.get("samples_needed") or 0) for m in judged) if verdict == UNDECIDED else 0,
    }


def summary(result: dict[str, Any], checked_at: str) -> dict[str, Any]:
    """What the gate reads: the verdict, against which version, and the live metric's interval."""
    live: dict[str, Any] = next((m for m in result["measures"] if m["measure"] == result["metric"]), {})
    return {
        "verdict": result["verdict"],
        "baseline": result["baseline"],
        "metric": result["metric"],
        "difference": live.get("difference"),
        "ci_low": live.get("ci_low"),
        "ci_high": live.get("ci_high"),
        "confidence": CONFIDENCE,
        "worse": sorted(m["measure"] for m in result["measures"] if m["verdict"] == WORSE),
        "checked_at": checked_at,
    }


def record(repo: Repo, registry: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Keep the comparison where the promotion gate reads it: the challenger's registry tags
    (`input.version.compare`) and the record log; the summary kept."""
    kept = summary(result, utcnow())
    registry.set_tags(result["model"], result["challenger"], names.compare_tags(result["environment"], kept))
    RecordLog(repo.root).note(
        "compare", result["environment"], result["model"], {**kept, "challenger": result["challenger"]}
    )
    return kept
