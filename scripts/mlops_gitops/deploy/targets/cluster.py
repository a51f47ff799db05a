"""What the cluster says about one InferenceService, behind one small interface, for the
`kserve` target's directory mode (Argo CD or Flux applies the rendered files; the reconciler
only reads):

    health(model, environment, expected) -> (Health, detail)

    argocd    `argocd app manifests <app> --source live`: is the live InferenceService the one
              rendered (its annotations)? then `argocd app get <app> -o json`: its entry in the
              Application's status.resources (sync status and health, as Argo CD's UI shows
              them); the app's name from deploy.kserve.health.app ("{model}-{environment}")
    kubectl   `kubectl get inferenceservice <name> -n <ns> -o json`, read only: the rendered
              one (its annotations)? then its Ready condition (True: healthy, False: degraded,
              none yet: progressing)
    none      nothing to ask: Unknown, honestly (the reconciler then never moves the alias)

Health is only believed of the InferenceService that was rendered: until the live one carries
the rendered annotations (the version, the traffic, the artifact's sha256), the cluster still
runs the previous one and the new one is Progressing, however healthy the old one is.

Both run the real command line tool from PATH; the tests put stand-ins on PATH that answer as
those tools do (their docstrings say so).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import yaml

from ...core.health import Health

ARGO_HEALTH = {
    "Healthy": Health.HEALTHY,
    "Progressing": Health.PROGRESSING,
    "Suspended": Health.PROGRESSING,
    "Degraded": Health.DEGRADED,
    "Missing": Health.PROGRESSING,  # rendered, not in the cluster yet
    "Unknown": Health.UNKNOWN,
}
SOURCES = ("argocd", "kubectl", "none")


def _run(command: list[str]) -> tuple[int, str, str]:
    binary = shutil.which(command[0])
    if binary is None:
        return 127, "", f"{command[0]}: not on PATH"
    try:
        proc = subprocess.run([binary, *command[1:]], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return 124, "", f"{command[0]}: no answer in 120 s"
    return proc.returncode, proc.stdout, proc.stderr


def ready_condition(status: dict[str, Any]) -> tuple[Health, str]:
    """An InferenceService's health from its status.conditions (Ready)."""
    ready: dict[str, Any] = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
    health = {"True": Health.HEALTHY, "False": Health.DEGRADED}.get(
        str(ready.get("status", "")), Health.PROGRESSING
    )
    return health, str(ready.get("message") or ready.get("reason") or "")


@dataclass(frozen=True)
class ClusterHealth:
    source: str  # argocd | kubectl | none
    namespace: str
    app: str = "{model}-{environment}"  # argocd: the Application's name
    context: str = ""  # kubectl: the context to read with ("" = the current one)

    def health(self, model: str, environment: str, expected: dict[str, str]) -> tuple[Health, str]:
        """The rendered InferenceService's health; `expected` are the annotations it was rendered
        with (the live one must carry them to be the one judged)."""
        name = f"{model}-{environment}"
        if self.source == "argocd":
            return self._argocd(self.app.format(model=model, environment=environment), name, expected)
        if self.source == "kubectl":
            return self._kubectl(name, expected)
        return Health.UNKNOWN, "rendered for Argo CD / Flux; no health source (deploy.kserve.health)"

    def _argocd(self, app: str, name: str, expected: dict[str, str]) -> tuple[Health, str]:
        code, out, err = _run(["argocd", "app", "manifests", app, "--source", "live"])
        if code != 0:
            return Health.UNKNOWN, f"argocd app manifests {app}: {(err or out).strip()[:200]}"
        try:
            documents = [d for d in yaml.safe_load_all(out) if isinstance(d, dict)]
        except yaml.YAMLError:
            return Health.UNKNOWN, f"argocd app manifests {app}: not YAML"
        live = next(
            (
                d
                for d in documents
                if d.get("kind") == "InferenceService" and (d.get("metadata") or {}).get("name") == name
            ),
            None,
        )
        if live is None:
            return Health.PROGRESSING, f"Argo CD app {app}: no InferenceService {name} in the cluster yet"
        stale = _stale(live, expected)
        if stale:
            return Health.PROGRESSING, f"Argo CD app {app}: {stale}"
        code, out, err = _run(["argocd", "app", "get", app, "-o", "json"])
        if code != 0:
            return Health.UNKNOWN, f"argocd app get {app}: {(err or out).strip()[:200]}"
        try:
            status = json.loads(out).get("status", {})
        except ValueError:
            return Health.UNKNOWN, f"argocd app get {app}: not JSON"
        entry = next(
            (
                r
                for r in status.get("resources", [])
                if r.get("kind") == "InferenceService" and r.get("name") == name
            ),
            None,
        )
        if entry is None:
            return Health.PROGRESSING, f"Argo CD app {app}: no InferenceService {name} yet"
        if entry.get("status") != "Synced":
            return Health.PROGRESSING, f"Argo CD app {app}: {name} is {entry.get('status', 'not synced')}"
        health = entry.get("health") or {}
        detail = f"Argo CD app {app}: {health.get('status', 'no health')}"
        if health.get("message"):
            detail += f": {health['message']}"
        return ARGO_HEALTH.get(str(health.get("status")), Health.UNKNOWN), detail

    def _kubectl(self, name: str, expected: dict[str, str]) -> tuple[Health, str]:
        context = ["--context", self.context] if self.context else []
        code, out, err = _run(
            ["kubectl", *context, "get", "inferenceservice", name, "-n", self.namespace, "-o", "json"]
        )
        if code != 0:
            if "NotFound" in err or "not found" in err:
                return Health.PROGRESSING, f"{name}: not in the cluster yet"
            return Health.UNKNOWN, f"kubectl get inferenceservice {name}: {err.strip()[:200]}"
        try:
            live = json.loads(out)
        except ValueError:
            return Health.UNKNOWN, f"kubectl get inferenceservice {name}: not JSON"
        stale = _stale(live, expected)
        if stale:
            return Health.PROGRESSING, stale
        return ready_condition(live.get("status", {}))


def _stale(live: dict[str, Any], expected: dict[str, str]) -> str:
    """Why the live InferenceService is not the rendered one ("" when it is)."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    for key, value in expected.items():
        if annotations.get(key) != value:
            short = key.rsplit("/", 1)[-1]
            return (
                f"the cluster runs {short} {annotations.get(key) or 'none'} "
                f"(expected {value}: rendered, not applied yet)"
            )
    return ""
