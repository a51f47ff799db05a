"""Desired (manifests at a git revision) against live (registry aliases, what the target runs).

The loop, after Flux and Argo CD's gitops-engine:

    load_desired -> observe -> diff (plan) -> verify -> apply -> smoke -> alias -> record
                                               on failure: roll back to what served before

Each step is a function or method named after it (`load_desired`, `diff`, `Reconciler.verify`,
`target.deploy`, `target.smoke`, ...); the states are typed (`health.Sync`, `Health`, `Action`,
`Result`, `Reason`).

Sync status (does live match desired?) and health (does it work?) are separate fields.
One reconciler per environment at a time (an flock; the kernel frees it if the process dies).
Killed at any point, the next run converges: the target keeps the previous version serving
until a new one is healthy, the alias moves only after health, and records are appended
with fsync.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core import state
from ..core import tags as names
from ..core.config import ENVIRONMENTS_DIR, Repo
from ..core.errors import MlopsError
from ..core.gitinfo import git
from ..core.health import Action, Health, Reason, Result, Sync
from ..core.protocols import input_example
from ..core.records import DeploymentRecord, RecordLog, Routing, split_of
from ..registry.client import Verified
from .holds import Hold, Holds
from .plan import Change, Outcome, routing_text
from .targets import DeployFailed, Desired, Live, Target


def load_desired(repo: Repo, env: str | None = None) -> list[Desired]:
    if env is not None:
        repo.require_environment(env)
    return [
        desired_of(environment, model, manifest)
        for (environment, model), manifest in sorted(repo.manifests.items())
        if env is None or environment == env
    ]


def desired_of(environment: str, model: str, manifest: dict[str, Any]) -> Desired:
    target = manifest.get("target") or {}
    return Desired(
        model=model,
        environment=environment,
        path=f"{ENVIRONMENTS_DIR}/{environment}/{model}.yaml",
        version=manifest.get("version"),
        traffic=split_of(manifest),
        shadow=(manifest.get("shadow") or {}).get("version"),
        suspend=bool(manifest.get("suspend", False)),
        replicas=int(target.get("replicas", 1)),
        resources=dict(target.get("resources") or {}),
        target=str(target.get("kind", "local")),
        ready_timeout=int(target.get("ready_timeout", 600)),
        rollout=manifest.get("rollout") or None,
    )


def routing_of(desired: Desired) -> Routing | None:
    """The desired routing, in the terms rollbacks and holds compare."""
    if desired.version is None:
        return None
    split = tuple(sorted(desired.traffic)) if len(desired.traffic) > 1 else ()
    return Routing(desired.version, split, desired.shadow, desired.rollout)


def diff(
    desired: Sequence[Desired],
    observe: Callable[[str, str], Live],
    aliases: dict[str, dict[str, int]],
    running: Sequence[tuple[str, str]],
    env: str | None,
    observes_only: bool = False,
    invalid: dict[tuple[str, str], str] | None = None,
) -> list[Change]:
    """What to do about each manifest. With a target that only observes (Argo CD / Flux apply
    its files), a deployment already applied as desired but not yet seen healthy is AWAIT:
    Synced, and its alias waits for the cluster's health."""
    changes = []
    wanted = {(d.environment, d.model) for d in desired}
    for d in desired:
        live = observe(d.environment, d.model)
        alias = aliases.get(d.model, {}).get(d.environment)
        if d.suspend:
            changes.append(Change(d.model, d.environment, Action.SUSPENDED, d, live, alias, "suspend: true"))
            continue
        if not d.routing:
            if live.health == Health.MISSING:
                changes.append(
                    Change(d.model, d.environment, Action.UNCHANGED, d, live, alias, "nothing to run")
                )
            else:
                changes.append(
                    Change(d.model, d.environment, Action.REMOVE, d, live, alias, "version is null")
                )
            continue
        differences = []
        if live.health == Health.MISSING:
            changes.append(Change(d.model, d.environment, Action.CREATE, d, live, alias, live.detail))
            continue
        same = live.routing == d.routing and live.shadow == d.shadow
        if observes_only and same and (alias != d.version or live.health != Health.DEGRADED):
            # applied as desired: the cluster's health decides (the alias waits for it)
            action = Action.AWAIT if alias != d.version else Action.UNCHANGED
            detail = f"{live.health}: {live.detail}" if action == Action.AWAIT else ""
            changes.append(Change(d.model, d.environment, action, d, live, alias, detail))
            continue
        if not same:
            differences.append(
                f"{routing_text(live.routing, live.shadow)} -> {routing_text(d.routing, d.shadow)}"
            )
        if live.health not in (Health.HEALTHY, Health.UNKNOWN):
            differences.append(f"{live.health}: {live.detail}".rstrip(": "))
        if alias != d.version:
            differences.append(
                f"@{d.environment} v{alias} -> v{d.version}" if alias else f"@{d.environment} -> v{d.version}"
            )
        action = Action.UPDATE if differences else Action.UNCHANGED
        changes.append(Change(d.model, d.environment, action, d, live, alias, "; ".join(differences)))
    for (environment, model), problem in sorted((invalid or {}).items()):
        if env is None or environment == env:  # left alone: what runs keeps running (InvalidSpec)
            live = observe(environment, model)
            alias = aliases.get(model, {}).get(environment)
            changes.append(Change(model, environment, Action.INVALID, None, live, alias, problem))
    for environment, model in running:
        if (environment, model) in wanted or (env is not None and environment != env):
            continue
        if (environment, model) in (invalid or {}):
            continue
        live = observe(environment, model)
        changes.append(
            Change(
                model,
                environment,
                Action.REMOVE,
                None,
                live,
                aliases.get(model, {}).get(environment),
                "manifest is gone",
            )
        )
    return changes


@contextlib.contextmanager
def env_lock(root: Path, env: str) -> Iterator[None]:
    """One reconciler per environment: a second one is refused at once, naming the first."""
    path = state.lock_file(root, env)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise MlopsError(
                f"environment {env}: another reconcile is running (pid {holder}; lock {path}); "
                "expected one at a time, try again when it ends"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def reconciler_for(repo: Repo, kind: str | None = None) -> Reconciler:
    """The reconciler over this repository's registry and deployment target."""
    from ..registry.client import Registry
    from .targets import for_repo

    registry = Registry(repo)
    return Reconciler(repo, registry, for_repo(repo, registry, kind))


class Reconciler:
    def __init__(self, repo: Repo, registry: Any, target: Target, revision: str | None = None):
        self.repo = repo
        self.registry = registry
        self.target = target
        self.records = RecordLog(repo.root)
        self.store = state.artifacts_dir(repo.root)
        self.revision = revision or git(repo.root, "rev-parse", "HEAD", check=False) or "unknown"

    def plan(
        self,
        env: str | None = None,
        aliases: dict[str, dict[str, int]] | None = None,
        holds: Holds | None = None,
    ) -> list[Change]:
        desired = load_desired(self.repo, env)
        aliases = self.registry.aliases() if aliases is None else aliases
        changes = diff(
            desired,
            self.target.observe,
            aliases,
            self.target.running(),
            env,
            observes_only=self.target.observes_only,
            invalid=self.repo.invalid,
        )
        holds = holds or Holds(self.repo.root, self.registry)
        return [self._held(self._canary(c), holds) for c in changes]

    def _held(self, change: Change, holds: Holds) -> Change:
        """A deployment under a break-glass hold is left alone until git asks for what runs."""
        if change.desired is None or change.action == Action.INVALID:
            return change
        hold = holds.get(change.environment, change.model)
        if hold is None:
            return change
        asked = routing_of(change.desired)
        if asked is not None and asked == Routing.from_dict(hold.routing):
            return replace(change, hold=hold, detail=f"hold ends: git asks for what runs; {change.detail}")
        wants = asked.text() if asked else "nothing"
        detail = (
            f"{hold.said()}; git asks for {wants} (merge {hold.branch or 'the revert'}, or `mlops resume`)"
        )
        return replace(change, action=Action.HELD, hold=hold, detail=detail)

    def _canary(self, change: Change) -> Change:
        """An update under a manifest's `rollout` is an analysed canary (rollout.py)."""
        from . import rollout

        progress = rollout.applies(self.repo.root, change) if change.action == Action.UPDATE else None
        if progress is None or change.desired is None or not change.desired.rollout:
            return change
        detail = rollout.describe(progress, {**rollout.DEFAULTS, **change.desired.rollout})
        return replace(change, action=Action.CANARY, detail=detail, rollout=progress)

    # -- apply ---------------------------------------------------------------------------
    def apply(
        self,
        changes: Sequence[Change],
        prune: bool = False,
        allow_empty: bool = False,
        progress: Callable[[Change], None] | None = None,
    ) -> list[Outcome]:
        outcomes = []
        removals = [c for c in changes if c.action == Action.REMOVE]
        if prune and removals and not allow_empty:
            for env in sorted({c.environment for c in removals}):
                if not any(
                    c.environment == env and c.action != Action.REMOVE and c.desired and c.desired.routing
                    for c in changes
                ):
                    raise MlopsError(
                        f"environment {env}: pruning would stop everything it runs "
                        "(expected --allow-empty to empty an environment on purpose)"
                    )
        for change in changes:
            if progress:
                progress(change)
            if change.hold is not None and change.action != Action.HELD:
                Holds(self.repo.root, self.registry).end(
                    change.environment,
                    change.model,
                    "git-agrees",
                    f"git asks for it at {self.revision[:12]}",
                    found=change.hold,
                )
            if change.action in (Action.UNCHANGED, Action.SUSPENDED):
                outcomes.append(Outcome(change, Result(change.action.value), version=change.alias))
            elif change.action == Action.HELD:
                outcomes.append(Outcome(change, Result.HELD, message=change.detail, version=change.alias))
            elif change.action == Action.INVALID:
                outcomes.append(self._invalid(change))
            elif change.action == Action.AWAIT:
                outcomes.append(self._await(change, change.live, change.alias))
            elif change.action == Action.CANARY:
                from . import rollout

                assert change.rollout is not None  # found once, by the plan
                outcomes.append(rollout.advance(self, change, change.rollout))
            elif change.action == Action.REMOVE:
                outcomes.append(
                    self._remove(change)
                    if prune
                    else Outcome(change, Result.SKIPPED, message="needs --prune")
                )
            else:
                outcomes.append(self.deploy(change))
        return outcomes

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
    ) -> None:
        """Append the record; then summarise it as registry tags on the versions it concerns."""
        desired = change.desired if result == Result.HEALTHY else None
        record = DeploymentRecord(
            model=change.model,
            environment=change.environment,
            version=version,
            previous=previous,
            result=result,
            revision=self.revision,
            reason=reason,
            target=self.target.kind,
            url=url or change.live.url,
            artifact_sha256=sha256,
            traffic=routing
            if routing is not None
            else [{"version": v, "percent": p} for v, p in (desired.routing if desired else ())],
            shadow=desired.shadow if desired else None,
            recovery_s=recovery_s,
            rollout=desired.rollout if desired else None,
            step=desired.step if desired else None,
        )
        self.records.append(record)
        for tagged, tag_result in tag_versions:
            try:
                current = dict(self.registry.version(change.model, tagged).tags)
                self.registry.set_tags(
                    change.model,
                    tagged,
                    names.history_tags(change.environment, tag_result, record.at, current),
                )
            except MlopsError:
                pass  # the record is written; the summary tags catch up on the next apply

    def _invalid(self, change: Change) -> Outcome:
        """Its files fail validation: nothing is changed, the failure recorded once per problem."""
        live = change.live
        serving = live.routing[0][0] if live.routing else None
        reason = f"{Reason.INVALID_SPEC}: {change.detail}"
        records, _ = self.records.read(change.environment, change.model)
        if not (records and records[-1].result == Result.INVALID and records[-1].reason == reason):
            self.record(
                change,
                Result.INVALID,
                serving,
                serving,
                reason,
                routing=[{"version": v, "percent": p} for v, p in live.routing],
            )
        said = f"{change.detail}; " + (
            f"{routing_text(live.routing, live.shadow)} keeps serving" if live.routing else "nothing runs"
        )
        return Outcome(change, Result.INVALID, Reason.INVALID_SPEC, said, serving, serving)

    def verify(self, desired: Desired) -> dict[int, Verified]:
        """The loop's verify step: every version the manifest routes to (or mirrors), fetched into
        the store, re-hashed against the sha256 recorded at registration, and its signature checked
        against the environment's trust policy (VerifyFailed else), before any server loads it."""
        return {
            v: self.registry.fetch_admitted(desired.model, v, self.store, desired.environment)
            for v in desired.versions
        }

    def deploy(self, change: Change) -> Outcome:
        """Apply one change: verify, admit, deploy, smoke or await health, alias, record; roll
        back by itself on failure. The rollout drives its steps through it."""
        desired = change.desired
        assert desired is not None
        serving = (Health.HEALTHY, Health.DEGRADED, Health.UNKNOWN)
        before = change.live.routing if change.live.health in serving else ()
        # a version that failed clients since its switch (its previous one answered them): a
        # rollback returns to what served before it
        before = tuple(change.live.extra.get("fallback") or ()) or before
        previous = before[0][0] if before else change.alias
        version = desired.version
        try:
            artifacts = self.verify(desired)
            self.target.admit(desired, artifacts)
        except MlopsError as exc:  # VerifyFailed, a version not in the registry, or not admitted
            reason = exc.reason if isinstance(exc, DeployFailed) else Reason.VERIFY_FAILED
            self.record(change, Result.FAILED, previous, previous, f"{reason}: {exc}")
            return Outcome(change, Result.FAILED, reason, f"{desired.path}: {exc}", previous, previous)
        swapped = False
        try:
            live = self.target.deploy(desired, artifacts)
            swapped = True
            self.target.smoke(desired, _examples(artifacts, self.store / desired.model))
        except DeployFailed as failure:
            return self._roll_back(change, failure, before, previous, swapped, time.monotonic())
        if self.target.observes_only and live.health != Health.HEALTHY:
            return self._await(change, live, previous, artifacts)
        if version is not None and change.alias != version:
            self.registry.set_alias(desired.model, desired.environment, version)
        self.record(
            change,
            Result.HEALTHY,
            version,
            previous,
            url=live.url,
            sha256=artifacts[version].sha256 if version is not None else "",
            tag_versions=[(v, Result.HEALTHY) for v, _ in desired.routing]
            + [(v, Result.REPLACED) for v, _ in before if v not in desired.versions],
        )
        return Outcome(change, Result.HEALTHY, version=version, previous=previous, message=live.url)

    def _await(
        self,
        change: Change,
        live: Live,
        previous: int | None,
        artifacts: dict[int, Verified] | None = None,
    ) -> Outcome:
        """A deployment applied as desired, its health the cluster's to report (Argo CD / Flux):
        healthy -> the alias moves and the healthy record starts the soak clock; progressing ->
        wait, up to the manifest's ready_timeout, then (or at once when degraded) fail and
        propose the revert in git, since only git can change what the cluster runs; unknown ->
        wait, saying so (nothing to judge by)."""
        desired = change.desired
        assert desired is not None and desired.version is not None
        if live.health == Health.HEALTHY:
            if change.alias != desired.version:
                self.registry.set_alias(desired.model, desired.environment, desired.version)
            sha = artifacts[desired.version].sha256 if artifacts else ""
            self.record(
                change,
                Result.HEALTHY,
                desired.version,
                previous,
                f"seen healthy: {live.detail}",
                url=live.url,
                sha256=sha,
                tag_versions=[(v, Result.HEALTHY) for v, _ in desired.routing],
            )
            return Outcome(
                change, Result.HEALTHY, version=desired.version, previous=previous, message=live.url
            )
        routing = [{"version": v, "percent": p} for v, p in desired.routing]
        if live.health == Health.DEGRADED and change.alias == desired.version:
            return self._not_ready(change, live, previous, 0.0, revert=False)  # it was healthy before
        # the current wait: the newest run of progressing / failed records of this routing
        records, _ = self.records.read(desired.environment, desired.model)
        current = []
        for record in reversed(records):
            if record.result not in (Result.PROGRESSING, Result.FAILED) or (
                record.version,
                record.traffic,
            ) != (
                desired.version,
                routing,
            ):
                break
            current.append(record)
        if not any(r.result == Result.PROGRESSING for r in current):
            self.record(change, Result.PROGRESSING, desired.version, previous, live.detail, routing=routing)
            current = [self.records.read(desired.environment, desired.model)[0][-1]]
        waiting = current[-1]  # its first record
        # the clock policies judge by (MLOPS_NOW, as for the soak rule), else the wall clock
        now = os.environ.get("MLOPS_NOW")
        clock = datetime.fromisoformat(now) if now else datetime.now(UTC)
        waited = (clock - datetime.fromisoformat(waiting.at)).total_seconds()
        timed_out = live.health != Health.UNKNOWN and waited > desired.ready_timeout
        failed_before = any(r.result == Result.FAILED for r in current)
        if live.health == Health.DEGRADED or timed_out or (failed_before and live.health != Health.UNKNOWN):
            return self._not_ready(change, live, previous, waited)
        said = f"{live.health} for {waited:.0f} s: {live.detail}"
        if live.health != Health.UNKNOWN:
            said += f" (ready_timeout {desired.ready_timeout} s)"
        return Outcome(change, Result.PROGRESSING, "", said, desired.version, previous)

    def _not_ready(
        self, change: Change, live: Live, previous: int | None, waited: float, revert: bool = True
    ) -> Outcome:
        """The rendered version failed (degraded, or not Ready in time): recorded once, and its
        revert proposed in git (a pull request when `gh` can, else the branch and the command).
        A version that was healthy here before and degrades is reported, not reverted."""
        from ..core.github import ready
        from .rollback import revert_last_promotion

        desired = change.desired
        assert desired is not None
        why = (
            f"{live.health}: {live.detail}"
            if live.health == Health.DEGRADED
            else f"not Ready after {waited:.0f} s (ready_timeout {desired.ready_timeout} s): {live.detail}"
        )
        reason = Reason.NOT_READY if revert else Reason.HEALTH_CHECK_FAILED
        branch = ""
        said = "it was healthy here before: not reverted"
        if revert:
            try:
                proposed = revert_last_promotion(
                    self.repo, desired.model, desired.environment, why, open_pr=ready()
                )
                said = f"revert proposed: {proposed['pull_request']}"
                branch = proposed["branch"]
            except MlopsError as exc:  # proposed already (its branch exists), or nothing to go back to
                said = f"no revert proposed: {exc}"
        routing = [{"version": v, "percent": p} for v, p in desired.routing]
        records, _ = self.records.read(desired.environment, desired.model)
        last = records[-1] if records else None
        if not (
            last
            and last.result == Result.FAILED
            and (last.version, last.traffic) == (desired.version, routing)
        ):
            self.record(
                change,
                Result.FAILED,
                desired.version,
                previous,
                f"{reason}: {why}; {said}",
                tag_versions=[(desired.version, Result.FAILED)] if desired.version else [],
                routing=routing,
            )
        message = f"v{desired.version} {why}; {said}" + (f" (branch {branch})" if branch else "")
        return Outcome(change, Result.FAILED, reason, message, desired.version, previous)

    def _roll_back(
        self,
        change: Change,
        failure: DeployFailed,
        before: tuple[tuple[int, int], ...],
        previous: int | None,
        swapped: bool,
        failed_at: float,
    ) -> Outcome:
        desired = change.desired
        assert desired is not None
        cause = f"{failure.reason}: {failure}"
        failed = desired.version
        if not before:
            self.target.remove(desired.environment, desired.model)
            self.record(
                change,
                Result.FAILED,
                None,
                None,
                cause,
                tag_versions=[(failed, Result.FAILED)] if failed else [],
            )
            return Outcome(
                change,
                Result.FAILED,
                failure.reason,
                f"{failure} (nothing ran before; nothing serves)",
                None,
                None,
            )
        back = replace(
            desired,
            version=before[0][0],
            traffic=before if len(before) > 1 else (),
            shadow=change.live.shadow,
        )
        if swapped:  # the new one was switched in and then failed its smoke test: switch back
            try:
                artifacts = self.verify(back)
                self.target.deploy(back, artifacts)
                self.target.smoke(back, _examples(artifacts, self.store / back.model))
            except (DeployFailed, MlopsError) as exc:
                self.record(change, Result.FAILED, None, previous, f"{cause}; rollback failed: {exc}")
                return Outcome(
                    change,
                    Result.FAILED,
                    failure.reason,
                    f"{failure}; rollback to v{back.version} failed too: {exc}",
                    None,
                    previous,
                )
        recovery = round(time.monotonic() - failed_at, 3) if swapped else 0.0
        if change.alias != back.version and back.version is not None:
            self.registry.set_alias(desired.model, desired.environment, back.version)
        self.record(
            change,
            Result.ROLLED_BACK,
            back.version,
            failed,
            cause,
            tag_versions=[(failed, Result.ROLLED_BACK)] if failed and failed != back.version else [],
            recovery_s=recovery,
        )
        return Outcome(
            change,
            Result.ROLLED_BACK,
            failure.reason,
            f"v{failed} failed: {failure}; rolled back to v{back.version}, which is serving"
            + (f" again after {recovery:.1f} s" if swapped else " (it never stopped)"),
            back.version,
            failed,
            recovery,
        )

    def _remove(self, change: Change) -> Outcome:
        self.target.remove(change.environment, change.model)
        if change.alias is not None:
            self.registry.delete_alias(change.model, change.environment)
        self.record(change, Result.REMOVED, None, change.alias, change.detail)
        return Outcome(change, Result.REMOVED, previous=change.alias)


def _examples(artifacts: dict[int, Verified], store: Path) -> dict[int, list[dict[str, Any]]]:
    """Each version's input example; one logged without an example is smoke-tested on another
    version's (same model, same signature), never waved through untested."""
    examples = {v: input_example(verified.path) for v, verified in artifacts.items()}
    if all(examples.values()):
        return examples
    others = (input_example(p) for p in sorted(store.glob("v*/model")))
    fallback = next((e for e in [*examples.values(), *others] if e), [])
    return {v: e or fallback for v, e in examples.items()}


def summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    return {"results": [o.to_dict() for o in outcomes], "counts": counts, "ok": all(o.ok for o in outcomes)}


def plan_document(changes: Sequence[Change]) -> dict[str, Any]:
    return {"changes": [c.row() for c in changes], "in_sync": all(c.sync == Sync.SYNCED for c in changes)}


def run_once(
    repo: Repo,
    kind: str | None = None,
    env: str | None = None,
    dry_run: bool = False,
    prune: bool = False,
    allow_empty: bool = False,
    progress: Callable[[Change], None] | None = None,
) -> tuple[Reconciler, list[Change], list[Outcome]]:
    """One reconcile of `env` (or every environment, each locked): the plan, and what applying it
    did (nothing with dry_run)."""
    if env is not None:
        repo.require_environment(env)  # before any lock file is made of its name
    reconciler = reconciler_for(repo, kind)
    outcomes: list[Outcome] = []
    with contextlib.ExitStack() as stack:
        for name in [env] if env else repo.environments:
            stack.enter_context(env_lock(repo.root, name))
        changes = reconciler.plan(env)
        if not dry_run:
            outcomes = reconciler.apply(changes, prune=prune, allow_empty=allow_empty, progress=progress)
    return reconciler, changes, outcomes


def watch(
    root: Path,
    once: Callable[[], bool],
    interval: float,
    max_backoff: float,
    iterations: int = 0,
    say: Callable[[str], None] = print,
    on_round: Callable[[bool], None] | None = None,
) -> bool:
    """`mlops reconcile --watch`: pull the git remote and reconcile, again and again.

    Failures back off exponentially up to `max_backoff`; a new revision is tried at once
    (a failed commit never blocks its fix) and wakes the wait early. With `iterations`, stop
    after that many rounds and return whether the last one was healthy."""
    failures, rounds, last_rev = 0, 0, ""
    while True:
        rounds += 1
        if git(root, "remote", check=False):
            pulled = git_pull(root)
            if pulled:  # keep reconciling what is here; say why it is not newer
                say(f"git pull: {pulled}")
        rev = git(root, "rev-parse", "HEAD", check=False)
        if rev != last_rev:
            failures = 0
        last_rev = rev
        try:
            ok = once()
        except MlopsError as exc:
            say(str(exc))
            ok = False
        failures = 0 if ok else failures + 1
        if on_round is not None:
            on_round(ok)
        if iterations and rounds >= iterations:
            return ok
        wait = interval if ok else min(max_backoff, interval * 2 ** (failures - 1))
        say(f"next reconcile in {wait:.1f}s")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:  # wake early when the revision changes
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            if git(root, "rev-parse", "HEAD", check=False) != last_rev:
                break


def git_pull(root: Path) -> str:
    """`git pull --ff-only`; "" when it worked, else its last line."""
    import subprocess

    pulled = subprocess.run(["git", "pull", "--ff-only", "--quiet"], cwd=root, capture_output=True, text=True)
    if pulled.returncode == 0:
        return ""
    said = (pulled.stderr or pulled.stdout).strip().splitlines()
    return said[-1] if said else f"exit {pulled.returncode}"


def status(
    repo: Repo, env: str | None = None, model: str | None = None, kind: str | None = None
) -> list[dict[str, Any]]:
    """Which version runs where, its sync and health, since when it is healthy, its URL, and the
    last thing that happened to it."""
    from ..core import output

    if env is not None:
        repo.require_environment(env)
    rows = []
    log = RecordLog(repo.root)
    reconciler = reconciler_for(repo, kind)
    holds = Holds(repo.root, reconciler.registry)
    try:
        aliases = reconciler.registry.aliases()
    except MlopsError as exc:  # the registry is down: what runs, and its health, still answer
        output.warn(f"{exc} (aliases unknown; the servers run from their verified local copies)")
        aliases, holds = {}, Holds(repo.root, None)
    changes = reconciler.plan(env, aliases=aliases, holds=holds)
    for change in changes:
        if model is not None and change.model != model:
            continue
        records, _ = log.read(change.environment, change.model)
        last = records[-1] if records else None
        healthy = next((r for r in reversed(records) if r.result == Result.HEALTHY), None)
        row = change.row()
        metrics = _served_metrics(change)
        rows.append(
            {
                "environment": change.environment,
                "model": change.model,
                "serving": row["live"],
                "desired": row["desired"],
                "sync": change.sync,
                "health": change.live.health,
                "since": healthy.at if healthy else None,
                "url": change.live.url,
                "latency": "; ".join(_latency_text(m) for m in metrics) or "-",
                "rollout": change.detail if change.action == Action.CANARY else "",
                # the roles the manifest names: the stable version and the challenger beside it
                "stable": change.desired.version if change.desired else None,
                "challenger": _challenger(change.desired),
                "held": change.detail if change.action == Action.HELD else "",
                "hold": change.hold.to_dict() if change.hold else None,
                "invalid": change.detail if change.action == Action.INVALID else "",
                "note": change.detail
                if change.action in (Action.CANARY, Action.HELD, Action.INVALID)
                else "",
                "last_result": f"{last.result} {last.at}" if last else None,
                "metrics": metrics,
            }
        )
    return rows


# `mlops status`'s table: the row keys it shows, and their headings
STATUS_COLUMNS = {
    "environment": "env", "model": "model", "serving": "serving", "desired": "desired", "sync": "sync",
    "health": "health", "since": "since", "url": "url", "latency": "p50/p99 ms · errors",
    "note": "rollout · hold · invalid", "last_result": "last result",
}  # fmt: skip


def _served_metrics(change: Change) -> list[dict[str, Any]]:
    """Each serving version's requests, error rate and p50/p99 latency, read from its server's
    /metrics (a server that proved itself this deployment's); [] where there is none to read."""
    from ..core.scrape import scrape

    live = change.live
    if live.extra.get("foreign") or not live.url.startswith("http"):
        return []  # a server that did not prove itself ours is never asked anything more
    if live.health not in (Health.HEALTHY, Health.DEGRADED):
        return []
    stats = scrape(change.live.url)
    return [stats[str(v)].to_dict() for v, _ in change.live.routing if str(v) in stats]


def _challenger(desired: Desired | None) -> int | None:
    routing = routing_of(desired) if desired else None
    challenger = routing.challenger if routing else None
    return challenger[0] if challenger else None


def _latency_text(m: dict[str, Any]) -> str:
    rate = "-" if m["error_rate"] is None else f"{100 * m['error_rate']:.1f}%"
    return f"v{m['version']} {m['p50_ms'] or '-'}/{m['p99_ms'] or '-'} · {rate}"


def apply_rollback_now(repo: Repo, result: dict[str, Any], reason: str) -> dict[str, Any]:
    """Break-glass (`mlops rollback --now`): deploy the rollback's routing at once, whatever branch
    is checked out, record that it was done before review, and hold it there (holds.py) until git
    asks for it (the revert merged) or `mlops resume`: otherwise the next reconcile from the default
    branch, on any machine, would undo it."""
    from ..core import yamlio
    from ..core.gitinfo import default_branch, show_file
    from .rollback import record_break_glass

    root, env, model = repo.root, result["environment"], result["model"]
    path = f"{ENVIRONMENTS_DIR}/{env}/{model}.yaml"
    manifest = yamlio.loads(
        git(root, "show", f"{result['commit']}:{path}"), f"{result['commit'][:12]}:{path}"
    )
    desired = replace(desired_of(env, model, manifest), rollout=None)  # at once: no canary steps
    reconciler = reconciler_for(repo, None)
    reconciler.revision = result["commit"]
    with env_lock(root, env):
        aliases = reconciler.registry.aliases()
        changes = diff(
            [desired], reconciler.target.observe, aliases, [], env, reconciler.target.observes_only
        )
        outcomes = reconciler.apply(changes)
        applied = summary(outcomes)
        if applied["ok"]:
            record_break_glass(repo, model, env, result, reason)
            held = ""

            # what the default branch asks for now (a --direct rollback on it: git agrees already)
            text = show_file(root, default_branch(root), path)
            asked = Routing.of_manifest(yamlio.loads(text, path) or {}) if text else None
            if asked != Routing.from_dict(result["to"]):
                from ..core.records import actor, utcnow

                held = (
                    Holds(root, reconciler.registry).place(
                        Hold(
                            model=model,
                            environment=env,
                            routing=result["to"],
                            asked=asked.to_dict() if asked else None,
                            by=actor(),
                            at=utcnow(),
                            reason=reason,
                            commit=result["commit"],
                            branch=result["branch"],
                        )
                    )
                    or "held until git asks for it"
                )
            applied["hold"] = held
    return applied
