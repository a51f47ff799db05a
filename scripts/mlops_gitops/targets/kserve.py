"""Target `kserve`: KServe `InferenceService` manifests, applied or left for Argo CD / Flux.

Without `deploy.kserve.kube_context` the manifests are written to `deploy.kserve.output_dir`
(one file per environment and model) for Argo CD or Flux to sync: that is the GitOps way to
reach a cluster, and this target's health is then the cluster's business ("unknown" here;
Argo CD reports it). With a context, `kubectl apply` and `kubectl wait --for=condition=Ready`
do the work and `kubectl get` observes.

A canary follows KServe's model: the stable version is the one rolled out before; the new
revision gets `canaryTrafficPercent` of the traffic. KServe has no shadow traffic, so a
manifest's shadow is ignored here with a note.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .. import yamlio
from ..gitinfo import git
from ..health import Health, Reason
from . import DeployFailed, Desired, Live

if TYPE_CHECKING:
    from ..registry import Verified

ANNOTATION = "mlops-gitops.dev"


def _quantities(resources: dict[str, Any]) -> dict[str, Any]:
    cpu, memory, gpu = resources.get("cpu"), resources.get("memory"), int(resources.get("gpu") or 0)
    base = {k: str(v) for k, v in (("cpu", cpu), ("memory", memory)) if v}
    limits = dict(base)
    if gpu:
        limits["nvidia.com/gpu"] = str(gpu)
    return {"requests": base, "limits": limits} if base or gpu else {}


def render(
    desired: Desired, namespace: str, storage_uris: dict[int, str], revision: str, sha256: dict[int, str]
) -> dict[str, Any]:
    """One InferenceService (serving.kserve.io/v1beta1) for one manifest."""
    assert desired.version is not None
    routing = desired.routing
    canary = next(((v, p) for v, p in routing if v != desired.version), None)
    served = canary[0] if canary else desired.version
    predictor: dict[str, Any] = {
        "minReplicas": desired.replicas,
        "maxReplicas": max(desired.replicas, 1),
        "model": {
            "modelFormat": {"name": "mlflow"},
            "protocolVersion": "v2",
            "storageUri": storage_uris[served],
        },
    }
    resources = _quantities(desired.resources)
    if resources:
        predictor["model"]["resources"] = resources
    if canary:
        predictor["canaryTrafficPercent"] = canary[1]
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": f"{desired.model}-{desired.environment}",
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": desired.model,
                "app.kubernetes.io/managed-by": "mlops-gitops",
                f"{ANNOTATION}/environment": desired.environment,
            },
            "annotations": {
                f"{ANNOTATION}/version": str(desired.version),
                f"{ANNOTATION}/traffic": json.dumps([{"version": v, "percent": p} for v, p in routing]),
                f"{ANNOTATION}/artifact-sha256": sha256.get(served, ""),
                f"{ANNOTATION}/revision": revision,
                **({f"{ANNOTATION}/shadow-ignored": str(desired.shadow)} if desired.shadow else {}),
            },
        },
        "spec": {"predictor": predictor},
    }


class KServeTarget:
    kind = "kserve"

    def __init__(self, root: Path, settings: dict[str, Any], registry: Any):
        self.root = root
        self.namespace = str(settings.get("namespace", "models"))
        self.output_dir = root / str(settings.get("output_dir", "deploy/kserve"))
        self.context = str(settings.get("kube_context") or "")
        self.registry = registry  # storage URIs come from it
        self.revision = git(root, "rev-parse", "HEAD", check=False)

    def path(self, env: str, model: str) -> Path:
        return self.output_dir / env / f"{model}.yaml"

    def running(self) -> list[tuple[str, str]]:
        if not self.output_dir.exists():
            return []
        return sorted((p.parent.name, p.stem) for p in self.output_dir.glob("*/*.yaml"))

    def _kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        binary = shutil.which("kubectl")
        if binary is None:
            raise DeployFailed(
                Reason.TARGET_UNAVAILABLE,
                "kubectl: not on PATH (expected it with deploy.kserve.kube_context set)",
            )
        return subprocess.run(
            [binary, "--context", self.context, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def observe(self, env: str, model: str) -> Live:
        path = self.path(env, model)
        if not path.exists():
            return Live(
                model, env, health=Health.MISSING, detail=f"{path.relative_to(self.root)}: not rendered"
            )
        # A file this target wrote itself: the C loader (when PyYAML has it) keeps observing
        # a thousand deployments cheap.
        rendered = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        annotations = rendered["metadata"].get("annotations", {})
        routing = tuple(
            (int(t["version"]), int(t["percent"]))
            for t in json.loads(annotations.get(f"{ANNOTATION}/traffic", "[]"))
        )
        health, detail = Health.UNKNOWN, "rendered for Argo CD / Flux; health is the cluster's"
        if self.context:
            got = self._kubectl(
                "get", "inferenceservice", rendered["metadata"]["name"], "-n", self.namespace, "-o", "json"
            )
            if got.returncode != 0:
                return Live(model, env, health=Health.MISSING, detail=got.stderr.strip()[:200])
            status = json.loads(got.stdout).get("status", {})
            ready: dict[str, Any] = next(
                (c for c in status.get("conditions", []) if c.get("type") == "Ready"), {}
            )
            health = {"True": Health.HEALTHY, "False": Health.DEGRADED}.get(
                ready.get("status", ""), Health.PROGRESSING
            )
            detail = ready.get("message", "")
        return Live(
            model, env, routing=routing, health=health, url=str(path.relative_to(self.root)), detail=detail
        )

    def deploy(self, desired: Desired, artifacts: dict[int, Verified]) -> Live:
        storage = {
            v: str(self.registry.client.get_model_version_download_uri(desired.model, str(v)))
            for v in desired.versions
        }
        sha = {v: verified.sha256 for v, verified in artifacts.items()}
        document = render(desired, self.namespace, storage, self.revision, sha)
        text = yaml.safe_dump(document, sort_keys=False)
        if self.context:
            applied = self._kubectl("apply", "-f", "-", stdin=text)
            if applied.returncode != 0:
                raise DeployFailed(
                    Reason.TARGET_UNAVAILABLE, f"kubectl apply: {applied.stderr.strip()[:300]}"
                )
        path = self.path(desired.environment, desired.model)
        path.parent.mkdir(parents=True, exist_ok=True)
        yamlio.write_atomic(path, text)
        return self.observe(desired.environment, desired.model)

    def smoke(self, desired: Desired, examples: dict[int, list[dict[str, Any]]]) -> None:
        if not self.context:
            return  # Argo CD / Flux sync it and report its health
        name = f"{desired.model}-{desired.environment}"
        waited = self._kubectl(
            "wait",
            "--for=condition=Ready",
            f"inferenceservice/{name}",
            "-n",
            self.namespace,
            "--timeout=300s",
        )
        if waited.returncode != 0:
            raise DeployFailed(
                Reason.HEALTH_CHECK_FAILED, f"{name}: not Ready: {waited.stderr.strip()[:300]}"
            )

    def remove(self, env: str, model: str) -> None:
        if self.context:
            self._kubectl(
                "delete", "inferenceservice", f"{model}-{env}", "-n", self.namespace, "--ignore-not-found"
            )
        self.path(env, model).unlink(missing_ok=True)
