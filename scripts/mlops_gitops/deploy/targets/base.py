"""What a deployment target is: the desired and live states it is given and reports, the
`Target` protocol each implements, and the failure it raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ...core.errors import ExitCode, MlopsError
from ...core.health import Health, Reason

if TYPE_CHECKING:
    from ...registry.client import Verified


class DeployFailed(MlopsError):
    """A deployment did not become healthy; `reason` is a name CI and people can match on."""

    exit_code = ExitCode.FAILED

    def __init__(self, reason: Reason, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Desired:
    """One manifest, as the reconciler needs it."""

    model: str
    environment: str
    path: str  # environments/<env>/<model>.yaml
    version: int | None
    traffic: tuple[tuple[int, int], ...] = ()
    shadow: int | None = None
    suspend: bool = False
    replicas: int = 1
    resources: dict[str, Any] = field(default_factory=dict)
    target: str = "local"
    ready_timeout: int = 600  # seconds a new version may take to become Ready before it counts as failed
    rollout: dict[str, Any] | None = field(default=None, compare=False)  # an analysed canary's settings
    step: int | None = field(default=None, compare=False)  # one step of a rollout: the canary's weight

    @property
    def routing(self) -> tuple[tuple[int, int], ...]:
        """(version, percent) pairs that take traffic; empty when nothing should run."""
        if self.version is None:
            return ()
        return self.traffic or ((self.version, 100),)

    @property
    def versions(self) -> list[int]:
        found = [v for v, _ in self.routing] + ([self.shadow] if self.shadow else [])
        return sorted(set(found))


@dataclass
class Live:
    model: str
    environment: str
    routing: tuple[tuple[int, int], ...] = ()
    shadow: int | None = None
    health: Health = Health.MISSING
    url: str = ""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Target(Protocol):
    kind: str
    # True when this target cannot check health itself (it renders files that Argo CD or Flux
    # applies): a deployment then waits, Progressing, until `observe` sees it healthy.
    observes_only: bool

    def observe(self, env: str, model: str) -> Live: ...

    def admit(self, desired: Desired, artifacts: dict[int, Verified]) -> None: ...

    def deploy(self, desired: Desired, artifacts: dict[int, Verified]) -> Live: ...

    def smoke(self, desired: Desired, examples: dict[int, list[dict[str, Any]]]) -> None: ...

    def remove(self, env: str, model: str) -> None: ...

    def running(self) -> list[tuple[str, str]]: ...
