"""Every path under `.mlops/`, this project's local state (git-ignored), with one owner.

Two roots:

* the state directory, `$MLOPS_STATE_DIR` or `<repo>/.mlops`: what must outlive a checkout on
  the machine where deployments live (the reconciler's records, the model servers and their
  inference logs, verified artifacts, reports, evidence packs). A deploy host or a runner
  points MLOPS_STATE_DIR at a durable place; a laptop keeps it in the repository.
* the workspace, `<repo>/.mlops`: what one checkout's commands hand each other (the gate's
  facts and its comment), gone with the checkout.

Nothing else in the engine spells a path under either of them. Every environment and model
name is checked here, before any path is made of it (and so before any file is opened): a
name that could climb out of its folder never becomes a path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import MlopsError

NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def name(kind: str, value: object) -> str:
    """`value` when it is a name (a DNS-1123 label, as mlops.yaml's and the schemas'); else one
    line naming it."""
    if not isinstance(value, str) or not NAME.match(value):
        raise MlopsError(
            f"{kind} {str(value)[:64]!r}: not a name (expected a DNS label: lowercase letters, digits "
            "and '-', as in mlops.yaml)"
        )
    return value


STATE_DIR_ENV = "MLOPS_STATE_DIR"
WORKSPACE = ".mlops"


def state_dir(root: Path) -> Path:
    configured = os.environ.get(STATE_DIR_ENV)
    return Path(configured).resolve() if configured else root / WORKSPACE


def workspace(root: Path) -> Path:
    return root / WORKSPACE


# -- the log of everything that happened to a deployment (records.py reads and writes it) --------
def records_log(root: Path, env: str, model: str) -> Path:
    return state_dir(root) / "records" / name("environment", env) / f"{name('model', model)}.jsonl"


# -- model servers (the local target) ------------------------------------------------------------
def servers_dir(root: Path) -> Path:
    return state_dir(root) / "servers"


def server_file(root: Path, env: str, model: str, suffix: str = ".json") -> Path:
    """<model>.json (host, port, pid), .spec.json (what it serves), .token (0600), .log."""
    return servers_dir(root) / name("environment", env) / f"{name('model', model)}{suffix}"


def inference_log(root: Path, env: str, model: str) -> Path:
    """Where the model server of (env, model) logs every answer (what drift and feedback read)."""
    return state_dir(root) / "inference" / name("environment", env) / f"{name('model', model)}.jsonl"


def rollout_file(root: Path, env: str, model: str) -> Path:
    """An analysed canary's progress: canary and stable versions, step, failed checks, log offset."""
    return state_dir(root) / "rollouts" / name("environment", env) / f"{name('model', model)}.json"


def hold_file(root: Path, env: str, model: str) -> Path:
    """A break-glass hold as this machine last knew it (the registry's copy is the shared one)."""
    return state_dir(root) / "holds" / name("environment", env) / f"{name('model', model)}.json"


def lock_file(root: Path, env: str) -> Path:
    return state_dir(root) / "locks" / f"{name('environment', env)}.lock"


def artifacts_dir(root: Path) -> Path:
    """Verified model artifacts, <model>/v<N>/model, downloaded once and re-hashed on every use."""
    return state_dir(root) / "artifacts"


def artifact_dir(root: Path, model: str, version: int) -> Path:
    """One version's verified artifact folder (its `model/` inside)."""
    return artifacts_dir(root) / name("model", model) / f"v{int(version)}"


# -- reports and packs ---------------------------------------------------------------------------
def drift_dir(root: Path, env: str) -> Path:
    """Every drift report of an environment, a folder per model (what CI uploads)."""
    return state_dir(root) / "drift" / name("environment", env)


def drift_reports(root: Path, env: str, model: str) -> Path:
    return drift_dir(root, env) / name("model", model)


def references(root: Path) -> Path:
    """Training files fetched from the DVC remote for drift, each named by its md5."""
    return state_dir(root) / "references"


def feedback_reports(root: Path, env: str, model: str) -> Path:
    return state_dir(root) / "feedback" / name("environment", env) / name("model", model)


def evidence_dir(root: Path, env: str) -> Path:
    return state_dir(root) / "evidence" / name("environment", env)


# -- the workspace: one checkout's hand-offs -----------------------------------------------------
def facts_dir(root: Path) -> Path:
    return workspace(root) / "facts"


def gate_comment(root: Path) -> Path:
    """The gate's verdict and a policy change's impact, as the pull request's comment (markdown)."""
    return workspace(root) / "policy-gate.md"


def signed_models(root: Path) -> Path:
    """The model files `mlops register` signed in this checkout, <model>/v<N>/: what the
    training job hands GitHub's artifact attestation (train.yml)."""
    return workspace(root) / "signed"


def drift_handoff(root: Path, env: str, what: str) -> Path:
    """What `make drift` hands the next step of its job: `summary.md` (the drift issue's body),
    `models.txt` (the drifted models, to retrain) and `status` (the verdict's exit code)."""
    if what not in ("summary.md", "models.txt", "status"):
        raise MlopsError(f"drift hand-off {what!r}: not one (expected summary.md, models.txt or status)")
    return workspace(root) / "handoff" / "drift" / name("environment", env) / what


def named(root: Path, env: str | None = None) -> dict[str, Path]:
    """The paths the Makefile and the workflows use, by name (`mlops paths` prints them): the
    one layout of both roots, never spelled a second time outside this module."""
    found = {
        "state": state_dir(root),
        "workspace": workspace(root),
        "gate_comment": gate_comment(root),
        "signed_models": signed_models(root),
    }
    if env is not None:
        found.update(
            evidence=evidence_dir(root, env),
            drift_reports=drift_dir(root, env),
            drift_summary=drift_handoff(root, env, "summary.md"),
            drift_models=drift_handoff(root, env, "models.txt"),
            drift_status=drift_handoff(root, env, "status"),
        )
    return found
