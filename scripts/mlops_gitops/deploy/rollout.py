"""An analysed canary: a manifest's `rollout` moves a new version's weight step by step, on
the verdicts of `analysis.judge`, and promotes it fully or rolls it back (after Flagger and
Argo Rollouts).

    rollout:
      steps: [10, 25, 50]   # the canary's weights (or step_weight: 10, max_weight: 50)
      interval: 60          # seconds between analyses
      threshold: 2          # failed analyses before the rollback
      checks: {min_requests: 50, max_error_rate: 0.01, max_latency_p99_ms: 250,
               max_class_shift: 0.1, max_score_psi: 0.2}

A promotion that changes `version` while another version serves starts it: the stable version
keeps 100 - weight percent, the canary gets the first step's weight. Every reconcile (one run,
or each round of `--watch`) whose interval has passed judges the log written since the last
judged analysis: pass -> the next weight, or after the last, the whole traffic and the alias;
fail -> counted, and at `threshold` failures the stable version takes all the traffic back,
the canary is tagged rolled-back and the revert of its promotion is proposed in git; waiting
(too few requests) -> nothing judged, nothing counted. A rollout that failed stays failed for
that version (the manifest must change). Each weight is a deployment record; each verdict an
`analysis` record with its checks. The progress lives in `state.rollout_file`, so a killed
reconciler resumes where it was.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from ..core import inference_log, state
from ..core.config import Repo
from ..core.health import Action, Health, Reason, Result
from ..core.records import RecordLog, utcnow
from . import analysis
from .plan import Change, Outcome


class Reconciler(Protocol):
    """What a rollout drives: the Reconciler's public face (reconcile.py imports this module,
    never the reverse)."""

    repo: Repo
    records: RecordLog
    revision: str

    def deploy(self, change: Change) -> Outcome: ...

    def record(
        self,
        change: Change,
        result: Result,
        version: int | None,
        previous: int | None,
        reason: str = "",
        url: str = "",
        sha256: str = "",
        tag_versions: Sequence[tuple[int, Result]] = (),
        recovery_s: float | None = None,
        routing: list[dict[str, int]] | None = None,
    ) -> None: ...


DEFAULTS = {"interval": 60, "threshold": 2}


def steps_of(settings: dict[str, Any]) -> list[int]:
    if settings.get("steps"):
        return [int(s) for s in settings["steps"]]
    step, top = int(settings["step_weight"]), int(settings["max_weight"])
    return list(range(step, top + 1, step))


def load(root: Any, env: str, model: str) -> dict[str, Any] | None:
    path = state.rollout_file(root, env, model)
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def save(root: Any, env: str, model: str, progress: dict[str, Any]) -> None:
    path = state.rollout_file(root, env, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(progress, indent=2, sort_keys=True))
    os.replace(scratch, path)  # whole or not at all: a kill never leaves half a file


def _serving(change: Change) -> tuple[tuple[int, int], ...]:
    healthy = change.live.health in (Health.HEALTHY, Health.UNKNOWN)
    return change.live.routing if healthy else ()


def applies(root: Any, change: Change) -> dict[str, Any] | None:
    """The rollout this change is (its progress, started or not), or None for a plain deploy:
    a manifest with `rollout` whose version differs from the one version serving healthy (or is
    the canary of a rollout under way, or one that failed)."""
    desired = change.desired
    if desired is None or not desired.rollout or desired.version is None or desired.traffic:
        return None
    progress = load(root, desired.environment, desired.model)
    asked = _asked_by(root, desired.path)
    if (
        progress
        and progress.get("canary") == desired.version
        and progress.get("phase") != "promoted"
        and progress.get("asked_by") in (None, asked)  # a new commit of the manifest: a new rollout
    ):
        return progress
    serving = _serving(change)
    if len(serving) == 1 and serving[0][0] != desired.version:
        if _recently_stable(root, desired):
            return None  # a return to a recent stable version is fast-tracked (Argo's rollbackWindow)
        return {"canary": desired.version, "stable": serving[0][0], "phase": "new", "asked_by": asked}
    return None


ROLLBACK_WINDOW = 3  # Argo Rollouts' rollbackWindow.revisions: recent stable versions come back at once


def _recently_stable(root: Any, desired: Any) -> bool:
    """True when `desired.version` served alone and healthy here among the last few versions
    that did: going back to it (a rollback) needs no canary, as in Argo Rollouts."""
    from ..core.records import RecordLog

    records, _ = RecordLog(root).read(desired.environment, desired.model)
    recent: list[int] = []
    for record in reversed(records):
        routing = record.routing
        full = record.result == Result.HEALTHY and record.step is None and routing and not routing.traffic
        if full and routing and routing.version not in recent:
            recent.append(routing.version)
        if len(recent) > ROLLBACK_WINDOW:
            break
    return desired.version in recent[1:]  # recent[0] serves now


def _asked_by(root: Any, path: str) -> str:
    """The last commit that changed the manifest (Flagger's new revision: a new analysis)."""
    from ..core.gitinfo import git

    return git(root, "log", "-1", "--format=%H", "--", path, check=False)


def describe(progress: dict[str, Any], settings: dict[str, Any]) -> str:
    steps = steps_of(settings)
    if progress.get("phase") == "failed":
        return f"rollout of v{progress['canary']} failed: {progress.get('reason', '')}"
    if progress.get("phase") == "new":
        return f"canary v{progress['canary']} to start at {steps[0]}% (stable v{progress['stable']})"
    index = min(int(progress.get("step", 0)), len(steps) - 1)
    return (
        f"canary v{progress['canary']} at {steps[index]}% (step {index + 1}/{len(steps)}), stable "
        f"v{progress['stable']}, {progress.get('failed', 0)} failed analyses"
    )


def _now() -> float:
    return time.time()


def _split(desired: Any, stable: int, weight: int) -> Any:
    return replace(
        desired, version=stable, traffic=((stable, 100 - weight), (desired.version, weight)), step=weight
    )


def advance(reconciler: Reconciler, change: Change, progress: dict[str, Any]) -> Outcome:
    """One step of the rollout: start it, re-apply its weight, judge, promote or roll back."""
    desired = change.desired
    assert desired is not None and desired.rollout is not None and desired.version is not None
    settings = {**DEFAULTS, **desired.rollout}
    steps, root = steps_of(settings), reconciler.repo.root
    env, model = desired.environment, desired.model
    canary, stable = int(progress["canary"]), int(progress["stable"])
    if progress.get("phase") == "failed":
        message = describe(progress, settings) + "; the manifest must change before another try"
        return Outcome(change, Result.FAILED, Reason.ANALYSIS_FAILED, message, stable, canary)
    log = state.inference_log(root, env, model)
    if progress.get("phase") == "new":
        offset = log.stat().st_size if log.exists() else 0
        progress = {
            **progress, "phase": "progressing", "step": 0, "failed": 0, "started_at": utcnow(),
            "offset": offset, "judged_at": _now(), "analyses": 0,
        }  # fmt: skip
        return _weigh(reconciler, change, progress, steps[0], f"canary v{canary} started")
    # steps edited in the manifest mid-rollout: the step it reached, or the new last one
    progress["step"] = min(int(progress["step"]), len(steps) - 1)
    weight = steps[progress["step"]]
    expected = _split(desired, stable, weight).routing
    if change.live.routing != expected:  # the server restarted, or someone changed it: re-apply
        return _weigh(reconciler, change, progress, weight, "weight re-applied")
    wait = float(settings["interval"]) - (_now() - float(progress["judged_at"]))
    if wait > 0:
        said = describe(progress, settings) + f"; next analysis in {wait:.0f} s"
        return Outcome(change, Result.PROGRESSING, "", said, stable, canary)
    # the window: what the split routed since this step's weight was applied (never earlier, even
    # from a log truncated or replaced since: its offset falls back to 0, its times do not)
    window = inference_log.read(log, since=_step_start(progress), offset=int(progress["offset"]))
    canary_entries = [e for e in window.entries if e.version == canary]
    stable_entries = [e for e in window.entries if e.version == stable]
    verdict, checks = analysis.judge(settings.get("checks") or {}, canary_entries, stable_entries)
    judged = {
        "canary": len(canary_entries),
        "stable": len(stable_entries),
        "min_requests": int(next(c.limit for c in checks if c.name == "min_requests")),
        "since": progress.get("step_started_at"),
        "callers": analysis.callers(canary_entries, stable_entries),
    }
    progress = {**progress, "judged_at": _now(), "analyses": int(progress.get("analyses", 0)) + 1}
    if verdict != analysis.WAITING:
        progress["offset"] = window.offset
    if verdict == analysis.FAIL:
        progress["failed"] = int(progress.get("failed", 0)) + 1
    failed_checks = [c for c in checks if not c.passed]
    step = int(progress["step"])
    if verdict == analysis.FAIL and progress["failed"] >= int(settings["threshold"]):
        then = "rollback"
    elif verdict == analysis.PASS:
        then = "promote" if step + 1 == len(steps) else "advance"
    else:
        then = "hold"
    _note(reconciler, desired, progress, weight, verdict, checks, then, judged)
    if then == "rollback":
        why = "; ".join(f"{c.name} {c.value} over {c.limit}" for c in failed_checks)
        return _roll_back(reconciler, change, progress, f"{progress['failed']} failed analyses: {why}")
    if then == "promote":
        outcome = reconciler.deploy(change)
        if outcome.ok:
            save(root, env, model, {**progress, "phase": "promoted", "weight": 100, "ended_at": utcnow()})
            outcome.message = f"canary v{canary} promoted after {progress['analyses']} analyses"
        return outcome
    if then == "advance":
        progress["step"] = step + 1
        return _weigh(reconciler, change, progress, steps[step + 1], f"v{canary} passed at {weight}%")
    save(root, env, model, progress)
    detail = "; ".join(c.detail or f"{c.name} {c.value} over {c.limit}" for c in failed_checks)
    said = f"{describe(progress, settings)}; {verdict}: {detail}".rstrip(": ")
    return Outcome(change, Result.PROGRESSING, "", said, stable, canary)


def _step_start(progress: dict[str, Any]) -> datetime | None:
    """When the current step's weight was applied (a rollout saved before this was kept: none)."""
    started = progress.get("step_started_at")
    return inference_log.parse_at(str(started)) if started else None


def _weigh(
    reconciler: Reconciler, change: Change, progress: dict[str, Any], weight: int, why: str
) -> Outcome:
    """Apply the stable/canary split at `weight` (the reconciler's deploy: verified, smoke-tested,
    switched back when it fails), then save the progress."""
    desired = change.desired
    assert desired is not None
    stable, canary = int(progress["stable"]), int(progress["canary"])
    step_change = replace(change, desired=_split(desired, stable, weight), action=Action.UPDATE)
    outcome = reconciler.deploy(step_change)
    if not outcome.ok:  # failed its smoke test: already switched back to what served
        reason = f"{outcome.reason}: {outcome.message}"
        _fail(reconciler, desired, progress, reason)
        return outcome
    progress = {**progress, "weight": weight, "step_started_at": utcnow()}
    save(reconciler.repo.root, desired.environment, desired.model, progress)
    settings = {**DEFAULTS, **(desired.rollout or {})}
    return Outcome(change, Result.PROGRESSING, "", f"{why}; {describe(progress, settings)}", stable, canary)


def _fail(reconciler: Reconciler, desired: Any, progress: dict[str, Any], reason: str) -> None:
    failed = {**progress, "phase": "failed", "reason": reason, "ended_at": utcnow()}
    save(reconciler.repo.root, desired.environment, desired.model, failed)


def _roll_back(reconciler: Reconciler, change: Change, progress: dict[str, Any], why: str) -> Outcome:
    """All traffic to the stable version, the canary tagged rolled-back, the revert proposed."""
    from ..core.github import ready
    from .rollback import revert_last_promotion

    desired = change.desired
    assert desired is not None
    stable, canary = int(progress["stable"]), int(progress["canary"])
    started = time.monotonic()
    back = replace(change, desired=replace(desired, version=stable, traffic=()), action=Action.UPDATE)
    outcome = reconciler.deploy(back)
    if not outcome.ok:
        return outcome
    recovery = round(time.monotonic() - started, 3)
    try:
        proposed = revert_last_promotion(
            reconciler.repo, desired.model, desired.environment, why, open_pr=ready()
        )
        said = f"revert proposed: {proposed['pull_request']}"
    except Exception as exc:  # proposed already, or nothing to go back to: said, never fatal
        said = f"no revert proposed: {exc}"
    reason = f"{Reason.ANALYSIS_FAILED}: {why}"
    reconciler.record(
        change, Result.ROLLED_BACK, stable, canary, f"{reason}; {said}",
        tag_versions=[(canary, Result.ROLLED_BACK)], recovery_s=recovery,
        routing=[{"version": stable, "percent": 100}],
    )  # fmt: skip
    _fail(reconciler, desired, progress, why)
    message = f"canary v{canary} rolled back to v{stable}: {why}; {said}"
    return Outcome(change, Result.ROLLED_BACK, Reason.ANALYSIS_FAILED, message, stable, canary, recovery)


def _note(
    reconciler: Reconciler,
    desired: Any,
    progress: dict[str, Any],
    weight: int,
    verdict: str,
    checks: list[analysis.Check],
    then: str,
    judged: dict[str, Any],
) -> None:
    """The analysis, recorded: its verdict, its checks and what it judged (requests the split
    routed to each version since the step began, pinned ones never among them; from how many
    distinct callers, where the log knows them; the minimum)."""
    reconciler.records.note(
        "analysis",
        desired.environment,
        desired.model,
        {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "canary": progress["canary"],
            "stable": progress["stable"],
            "step": int(progress["step"]) + 1,
            "weight": weight,
            "verdict": verdict,
            "failed_analyses": int(progress.get("failed", 0)),
            "checks": [c.to_dict() for c in checks],
            "requests": judged,
            "then": then,
            "revision": reconciler.revision,
        },
    )
