"""Target `kserve`: KServe `InferenceService` manifests, applied or left for Argo CD / Flux.

Without `deploy.kserve.kube_context` the manifests are written to `deploy.kserve.output_dir`
(one file per environment and model) for Argo CD or Flux to sync: that is the GitOps way to
reach a cluster. This target then observes only (`observes_only`): health is read from Argo CD
or kubectl (`deploy.kserve.health`, targets/cluster.py), and a new version stays Progressing,
its alias unmoved, until the cluster reports the rendered InferenceService Ready. With a
context, `kubectl apply` and `kubectl wait --for=condition=Ready` do the work and `kubectl get`
observes.

What the InferenceService carries:
- `storageUri`: the verified artifact, copied to the model store (`deploy.kserve.model_store`,
  modelstore.py) under its sha256, where KServe's storage initializer fetches it; the sha256
  is an annotation too.
- `runtime` / `runtimeVersion` (`deploy.kserve.runtime`): the serving runtime pinned, its
  MLflow checked against each model's (a model saved by a newer MLflow is refused, naming both).
- `logger` (`deploy.kserve.logger_url`): every request and response sent as CloudEvents to
  `mlops collect`, with the annotations that say which model, environment and version answered.

A canary follows KServe's model: the stable version is the one rolled out before; the new
revision gets `canaryTrafficPercent` of the traffic. KServe has no shadow traffic, so a
manifest's shadow is ignored here with a note.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import yaml

from ...core import protocols, yamlio
from ...core.config import outside
from ...core.errors import MlopsError
from ...core.gitinfo import git
from ...core.health import Health, Reason
from ...core.state import NAME, name
from . import validation
from .base import DeployFailed, Desired, Live
from .cluster import ClusterHealth, ready_condition

if TYPE_CHECKING:
    from ...registry.client import Verified
    from ...registry.modelstore import Store

ANNOTATION = "mlops-gitops.dev"
# What KServe's logger sends with every CloudEvent (its `annotations` extension): which model,
# environment and versions answer, so `mlops collect` can log the version that answered.
LOGGED_ANNOTATIONS = [f"{ANNOTATION}/model", f"{ANNOTATION}/environment", f"{ANNOTATION}/endpoints"]
# The annotations a live InferenceService must carry to be the rendered one.
IDENTITY = ("version", "traffic", "artifact-sha256")


@dataclass(frozen=True)
class Serving:
    """How the InferenceService is served: the pinned runtime and where its logger sends."""

    runtime: str = ""  # a ServingRuntime / ClusterServingRuntime name ("" = KServe picks by format)
    runtime_version: str = ""  # its image tag (runtimeVersion)
    runtime_mlflow: str = ""  # the MLflow (major.minor) that runtime loads models with
    logger_url: str = ""  # mlops collect's URL ("" = no logger)

    @classmethod
    def of(cls, settings: dict[str, Any]) -> Serving:
        runtime = settings.get("runtime") or {}
        return cls(
            str(runtime.get("name") or ""),
            str(runtime.get("version") or ""),
            str(runtime.get("mlflow") or ""),
            str(settings.get("logger_url") or ""),
        )


def mlflow_of(model_dir: Path) -> str:
    """The MLflow version a model was saved with (its MLmodel's mlflow_version)."""
    loaded = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    return str(loaded.get("mlflow_version") or "")


def runtime_problem(runtime_mlflow: str, model_mlflow: str) -> str:
    """Why a runtime with MLflow `runtime_mlflow` (major.minor) cannot load a model saved by
    `model_mlflow` ("" when it can): another major version, or a newer minor one."""
    if not runtime_mlflow:
        return ""
    if not model_mlflow:
        return "the model's MLmodel names no mlflow_version"
    try:
        have = tuple(int(x) for x in runtime_mlflow.split(".")[:2])
        need = tuple(int(x) for x in model_mlflow.split(".")[:2])
    except ValueError:
        return f"cannot compare MLflow {model_mlflow} with {runtime_mlflow}"
    if need[0] != have[0] or need[1] > have[1]:
        return f"saved with MLflow {model_mlflow}; the runtime loads with MLflow {runtime_mlflow}"
    return ""


def _quantities(resources: dict[str, Any]) -> dict[str, Any]:
    cpu, memory, gpu = resources.get("cpu"), resources.get("memory"), int(resources.get("gpu") or 0)
    base = {k: str(v) for k, v in (("cpu", cpu), ("memory", memory)) if v}
    limits = dict(base)
    if gpu:
        limits["nvidia.com/gpu"] = str(gpu)
    return {"requests": base, "limits": limits} if base or gpu else {}


def render(
    desired: Desired,
    namespace: str,
    storage_uris: dict[int, str],
    revision: str,
    sha256: dict[int, str],
    serving: Serving | None = None,
) -> dict[str, Any]:
    """One InferenceService (serving.kserve.io/v1beta1) for one manifest."""
    assert desired.version is not None
    serving = serving or Serving()
    routing = desired.routing
    canary = next(((v, p) for v, p in routing if v != desired.version), None)
    served = canary[0] if canary else desired.version
    model: dict[str, Any] = {
        "modelFormat": {"name": "mlflow"},
        "protocolVersion": "v2",
        "storageUri": storage_uris[served],
    }
    if serving.runtime:
        model["runtime"] = serving.runtime
    if serving.runtime_version:
        model["runtimeVersion"] = serving.runtime_version
    predictor: dict[str, Any] = {
        "minReplicas": desired.replicas,
        "maxReplicas": max(desired.replicas, 1),
        "model": model,
    }
    resources = _quantities(desired.resources)
    if resources:
        model["resources"] = resources
    if canary:
        predictor["canaryTrafficPercent"] = canary[1]
    if serving.logger_url:
        predictor["logger"] = {
            "mode": "all",
            "url": serving.logger_url,
            "metadataAnnotations": LOGGED_ANNOTATIONS,
        }
    endpoints = {"default": desired.version, **({"canary": canary[0]} if canary else {})}
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
                f"{ANNOTATION}/model": desired.model,
                f"{ANNOTATION}/environment": desired.environment,
                f"{ANNOTATION}/endpoints": json.dumps(endpoints),
                f"{ANNOTATION}/version": str(desired.version),
                f"{ANNOTATION}/traffic": json.dumps([{"version": v, "percent": p} for v, p in routing]),
                f"{ANNOTATION}/artifact-sha256": sha256.get(served, ""),
                f"{ANNOTATION}/revision": revision,
                **({f"{ANNOTATION}/shadow-ignored": str(desired.shadow)} if desired.shadow else {}),
            },
        },
        "spec": {"predictor": predictor},
    }


def rendered_routing(annotations: dict[str, Any]) -> tuple[tuple[int, int], ...]:
    """(version, percent) pairs a rendered InferenceService routes, from its traffic annotation
    (during an analysed rollout: the stable and the canary at its step)."""
    return tuple(
        (int(t["version"]), int(t["percent"]))
        for t in json.loads(annotations.get(f"{ANNOTATION}/traffic", "[]"))
    )


def with_collect_token(document: dict[str, Any]) -> dict[str, Any]:
    """What kubectl applies: the rendered InferenceService, its logger URL given the collector's
    token (`MLOPS_COLLECT_TOKEN`) as user info when the reconciler has one. Only applied, never
    written: the rendered file (and the hydrated branch Argo CD or Flux reads) never holds it."""
    token = os.environ.get(protocols.COLLECT_TOKEN, "")
    logger = document["spec"]["predictor"].get("logger")
    scheme, sep, rest = str((logger or {}).get("url", "")).partition("://")
    if not (token and sep):
        return document
    applied = copy.deepcopy(document)
    applied["spec"]["predictor"]["logger"]["url"] = f"{scheme}://logger:{quote(token, safe='')}@{rest}"
    return applied


class KServeTarget:
    kind = "kserve"

    def __init__(self, root: Path, settings: dict[str, Any], registry: Any):
        self.root = root
        self.settings = settings
        self.namespace = str(settings.get("namespace", "models"))
        self.output_dir = root / str(settings.get("output_dir", "deploy/kserve"))
        if outside(root, self.output_dir):
            raise MlopsError(
                f"mlops.yaml: deploy.kserve.output_dir: {settings.get('output_dir')} is outside the "
                "repository (expected a folder inside it)"
            )
        self.context = str(settings.get("kube_context") or "")
        self.serving = Serving.of(settings)
        health = settings.get("health") or {}
        self.cluster = ClusterHealth(
            str(health.get("from") or "none"),
            self.namespace,
            str(health.get("app") or "{model}-{environment}"),
            str(health.get("context") or ""),
        )
        self.observes_only = not self.context
        self.registry = registry
        self.revision = git(root, "rev-parse", "HEAD", check=False)
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The model store (made on first use: observing needs none)."""
        if self._store is None:
            from ...registry.modelstore import for_settings

            self._store = for_settings(self.root, self.settings)
        return self._store

    def path(self, env: str, model: str) -> Path:
        return self.output_dir / name("environment", env) / f"{name('model', model)}.yaml"

    def running(self) -> list[tuple[str, str]]:
        if not self.output_dir.exists():
            return []
        return sorted(
            (p.parent.name, p.stem)
            for p in self.output_dir.glob("*/*.yaml")
            if NAME.match(p.stem) and NAME.match(p.parent.name)  # what this target writes, nothing else
        )

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
        routing = rendered_routing(annotations)
        if self.context:
            got = self._kubectl(
                "get", "inferenceservice", rendered["metadata"]["name"], "-n", self.namespace, "-o", "json"
            )
            if got.returncode != 0:
                return Live(model, env, health=Health.MISSING, detail=got.stderr.strip()[:200])
            health, detail = ready_condition(json.loads(got.stdout).get("status", {}))
        else:
            expected = {f"{ANNOTATION}/{k}": annotations.get(f"{ANNOTATION}/{k}", "") for k in IDENTITY}
            health, detail = self.cluster.health(model, env, expected)
        ignored = annotations.get(f"{ANNOTATION}/shadow-ignored")  # the manifest's, noted
        return Live(
            model,
            env,
            routing=routing,
            shadow=int(ignored) if ignored else None,
            health=health,
            url=str(path.relative_to(self.root)),
            detail=detail,
        )

    def admit(self, desired: Desired, artifacts: dict[int, Verified]) -> None:
        """Refuse a version the pinned runtime cannot load, naming both MLflow versions."""
        for version, verified in sorted(artifacts.items()):
            problem = runtime_problem(self.serving.runtime_mlflow, mlflow_of(verified.path))
            if problem:
                runtime = self.serving.runtime or "the serving runtime"
                raise DeployFailed(
                    Reason.RUNTIME_MISMATCH,
                    f"{desired.model} v{version}: {problem} ({runtime}"
                    f"{':' + self.serving.runtime_version if self.serving.runtime_version else ''}; "
                    "expected mlops.yaml deploy.kserve.runtime to match, or the model re-saved)",
                )

    def deploy(self, desired: Desired, artifacts: dict[int, Verified]) -> Live:
        from ...registry.client import VerifyFailed
        from ...registry.modelstore import publish

        try:
            storage = {v: publish(self.store, verified) for v, verified in artifacts.items()}
        except VerifyFailed as exc:
            raise DeployFailed(Reason.VERIFY_FAILED, str(exc)) from None
        except OSError as exc:
            raise DeployFailed(Reason.TARGET_UNAVAILABLE, f"model store: {exc}") from None
        sha = {v: verified.sha256 for v, verified in artifacts.items()}
        document = render(desired, self.namespace, storage, self.revision, sha, self.serving)
        companions = self._signing(desired, document, artifacts)
        text = yaml.safe_dump(document, sort_keys=False)
        if self.context:
            applied = self._kubectl(
                "apply", "-f", "-", stdin=yaml.safe_dump(with_collect_token(document), sort_keys=False)
            )
            if applied.returncode != 0:
                raise DeployFailed(
                    Reason.TARGET_UNAVAILABLE, f"kubectl apply: {applied.stderr.strip()[:300]}"
                )
        path = self.path(desired.environment, desired.model)
        path.parent.mkdir(parents=True, exist_ok=True)
        signing_file = self.signing_path(desired.environment, desired.model)
        if companions:
            yamlio.write_atomic(signing_file, yaml.safe_dump_all(companions, sort_keys=False))
        else:
            signing_file.unlink(missing_ok=True)
        yamlio.write_atomic(path, text)
        return self.observe(desired.environment, desired.model)

    def signing_path(self, env: str, model: str) -> Path:
        """The in-cluster verifier's resources beside the InferenceService (targets/validation.py)."""
        return self.path(env, model).with_suffix(".signing.yaml")

    def _signing(
        self, desired: Desired, document: dict[str, Any], artifacts: dict[int, Verified]
    ) -> list[Any]:
        """The served version's signature on the InferenceService (where its bundle lies in the
        store, who signed it), and with deploy.kserve.verifier what the in-cluster verifier needs."""
        from ...registry import signing

        served = next((v for v, _ in desired.routing if v != desired.version), int(desired.version or 0))
        verified = artifacts[served]  # admitted by the verify step, which named its signer
        if verified.signing is None or not verified.signer:
            return []
        annotations = document["metadata"]["annotations"]
        annotations[f"{ANNOTATION}/signature"] = self.store.signature_uri(verified.sha256)
        annotations[f"{ANNOTATION}/signed-by"] = verified.signed_by
        if self.settings.get("verifier") != "model-validation-operator":
            return []
        signer = signing.signers(self.registry.repo)[verified.signer]
        return validation.documents(document, verified.signing / signing.BUNDLE, signer)

    def smoke(self, desired: Desired, examples: dict[int, list[dict[str, Any]]]) -> None:
        if not self.context:
            return  # Argo CD / Flux apply it; observe() reads its health from them
        name = f"{desired.model}-{desired.environment}"
        waited = self._kubectl(
            "wait",
            "--for=condition=Ready",
            f"inferenceservice/{name}",
            "-n",
            self.namespace,
            f"--timeout={desired.ready_timeout}s",
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
        self.signing_path(env, model).unlink(missing_ok=True)
