"""The reconciler's vocabulary, typed: sync status, health, the action a plan takes, the result
an apply records, and the named reasons of a failure. After Argo CD and gitops-engine, sync
(does live match desired?) and health (does it work?) are separate axes, and health is
ordered: `worse_than` says which of two states is the worse one.

They are str enums: written as their values in JSON, records and registry tags, and equal to
those strings when read back.
"""

from __future__ import annotations

from enum import StrEnum


class Sync(StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"  # the desired state cannot be read (an invalid file): nothing to compare


class Health(StrEnum):
    HEALTHY = "healthy"
    PROGRESSING = "progressing"  # starting, or waiting to be seen healthy
    MISSING = "missing"  # nothing runs
    DEGRADED = "degraded"  # runs, and fails
    UNKNOWN = "unknown"  # cannot be observed from here

    def worse_than(self, other: Health) -> bool:
        """gitops-engine's order: healthy < progressing < missing < degraded < unknown."""
        return _ORDER.index(self) > _ORDER.index(other)


_ORDER = [Health.HEALTHY, Health.PROGRESSING, Health.MISSING, Health.DEGRADED, Health.UNKNOWN]


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    REMOVE = "remove"
    SUSPENDED = "suspended"
    AWAIT = "await"  # applied as desired; waiting for the cluster to report it healthy
    CANARY = "canary"  # an analysed rollout: the new version's weight moves step by step
    HELD = "held"  # a break-glass hold: left alone until git asks for what runs, or `mlops resume`
    INVALID = "invalid"  # its manifest or model definition fails validation: left alone (InvalidSpec)

    @property
    def sync(self) -> Sync:
        if self == Action.INVALID:
            return Sync.UNKNOWN
        return Sync.SYNCED if self in (Action.UNCHANGED, Action.SUSPENDED, Action.AWAIT) else Sync.OUT_OF_SYNC


class Result(StrEnum):
    HEALTHY = "healthy"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"
    REMOVED = "removed"
    SUSPENDED = "suspended"
    SKIPPED = "skipped"
    BREAK_GLASS = "break-glass"
    REPLACED = "replaced"  # a newer version took over (a registry history tag, not a record)
    PROGRESSING = "progressing"  # rendered for Argo CD / Flux; waiting to be seen healthy
    HELD = "held"  # left as break-glass put it, on purpose
    INVALID = "invalid"  # its files fail validation; what ran keeps running

    @property
    def ok(self) -> bool:
        return self not in (Result.FAILED, Result.ROLLED_BACK, Result.INVALID)


class Reason(StrEnum):
    """Why a deployment failed, as CI and people match on it (after Flux's named reasons)."""

    HEALTH_CHECK_FAILED = "HealthCheckFailed"
    VERIFY_FAILED = "VerifyFailed"
    TARGET_UNAVAILABLE = "TargetUnavailable"
    RUNTIME_MISMATCH = "RuntimeMismatch"  # the model needs another MLflow than the serving runtime has
    NOT_READY = "NotReady"  # never became Ready within the manifest's ready_timeout
    ANALYSIS_FAILED = "AnalysisFailed"  # an analysed canary failed its checks `threshold` times
    INVALID_SPEC = "InvalidSpec"  # its manifest or model definition fails validation (Argo CD's name)
