"""The plan's types: a `Change` (desired against live, and the action that closes the gap) and
the `Outcome` of applying it. Shared by the reconciler and the rollout it drives, so neither
reaches into the other: the rollout imports these and calls the Reconciler's public `deploy`
and `record`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core.health import Action, Reason, Result, Sync
from .holds import Hold
from .targets import Desired, Live


@dataclass
class Change:
    model: str
    environment: str
    action: Action
    desired: Desired | None
    live: Live
    alias: int | None
    detail: str = ""
    rollout: dict[str, Any] | None = None  # an analysed canary's progress, as the plan found it
    hold: Hold | None = None  # a break-glass hold on it (held, or ending now that git agrees)

    @property
    def sync(self) -> Sync:
        return self.action.sync

    def row(self) -> dict[str, Any]:
        desired = self.desired
        return {
            "environment": self.environment,
            "model": self.model,
            "action": self.action,
            "sync": self.sync,
            "health": self.live.health,
            "live": routing_text(self.live.routing, self.live.shadow),
            "desired": routing_text(desired.routing, desired.shadow) if desired else "-",
            "alias": self.alias,
            "url": self.live.url,
            "detail": self.detail,
        }


@dataclass
class Outcome:
    change: Change
    result: Result
    reason: Reason | str = ""
    message: str = ""
    version: int | None = None
    previous: int | None = None
    recovery_s: float | None = None  # rolled-back: failed health check -> previous serving

    @property
    def ok(self) -> bool:
        return self.result.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.change.environment,
            "model": self.change.model,
            "action": self.change.action,
            "result": self.result,
            "reason": self.reason,
            "message": self.message,
            "version": self.version,
            "previous": self.previous,
            "recovery_s": self.recovery_s,
        }


def routing_text(routing: Sequence[tuple[int, int]], shadow: int | None) -> str:
    if not routing:
        return "-"
    text = " ".join(f"v{v}" if p == 100 else f"v{v}:{p}%" for v, p in routing)
    return text + (f" +shadow v{shadow}" if shadow else "")
