"""Deployment drivers behind one small interface (what the reconciler needs of a target).

    observe(env, model) -> Live        what runs there now, and its health
    admit(desired, artifacts)          refuse what cannot run there (DeployFailed), before anything changes
    deploy(desired, artifacts)         make it run `desired`; raise DeployFailed on failure
    smoke(desired, examples)           readiness and a prediction per version; raise DeployFailed
    remove(env, model)                 stop running it

`local` runs model servers as processes on this machine (the embedded default); `kserve`
renders InferenceService manifests and applies them with kubectl or leaves them for
Argo CD / Flux.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import DeployFailed, Desired, Live, Target

if TYPE_CHECKING:
    from ...core.config import Repo
    from ...registry.client import Registry

__all__ = ["DeployFailed", "Desired", "Live", "Target", "for_repo"]


def for_repo(repo: Repo, registry: Registry, kind: str | None = None) -> Target:
    """The repository's deployment target (`deploy.target` in mlops.yaml, or `kind`)."""
    from .kserve import KServeTarget
    from .local import LocalTarget

    deploy = repo.project.get("deploy") or {}
    if (kind or deploy.get("target", "local")) == "kserve":
        return KServeTarget(repo.root, deploy.get("kserve") or {}, registry)
    return LocalTarget(repo.root, deploy.get("local") or {})
