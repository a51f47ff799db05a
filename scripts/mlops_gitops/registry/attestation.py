"""A version's signature and provenance, made once and read back (registry.signing signs and
verifies; this module decides what is signed and where it is kept).

    sign_version(registry, model, version)   sign the registered files and an in-toto statement
                                              with a SLSA provenance predicate, keep both bundles
                                              with the version's run, tag the version
    audit(registry, model, version, envs)     the reconciler's checks alone (`mlops verify`)

What an environment's trust policy says of a verified artifact is registry.signing's
(`check`, `refusal`), which the registry adapter applies before anything serves it.

The provenance statement (https://slsa.dev/provenance/v1) names the model's files as subjects
(sha256 each), the builder (the workflow run on GitHub, the host elsewhere) and as resolved
dependencies the git commit, `dvc.lock` and each dataset's hash, with the params as external
parameters: every one taken from the version's lineage tags, which registration wrote.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import state
from ..core import tags as names
from ..core.config import Repo
from . import signing
from .lineage import sha256_file

if TYPE_CHECKING:
    from .client import Registry, Verified

SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/mlops-gitops-template/train/v1"
STATEMENT = "provenance.intoto.json"


def builder() -> dict[str, Any]:
    """Who ran the training: the workflow run on GitHub, act's or this host elsewhere."""
    env = os.environ
    if env.get("GITHUB_ACTIONS") == "true" and not env.get("ACT") and env.get("GITHUB_WORKFLOW_REF"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        run = f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env.get('GITHUB_RUN_ID', '')}"
        return {
            "id": f"{server}/{env['GITHUB_WORKFLOW_REF']}",
            "invocation": f"{run}/attempts/{env.get('GITHUB_RUN_ATTEMPT', '1')}",
        }
    where = "act" if env.get("ACT") else "host"
    return {"id": f"urn:mlops-gitops:{where}:{socket.gethostname()}", "invocation": ""}


def statement(project: str, model: str, version: int, files: Path, tags: dict[str, str]) -> dict[str, Any]:
    """The in-toto statement of one version (validated by in-toto's own Statement type)."""
    from google.protobuf import json_format
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    lineage = names.lineage_of(tags)
    subjects = [
        ResourceDescriptor(
            name=f"{model}/v{version}/{p.relative_to(files).as_posix()}", digest={"sha256": sha256_file(p)}
        ).pb
        for p in sorted(files.rglob("*"))
        if p.is_file()
    ]
    dependencies: list[dict[str, Any]] = []
    if lineage.get("git.commit"):
        dependencies.append(
            {
                "uri": f"git+{project}@refs/heads/{lineage.get('git.branch', '')}",
                "digest": {"gitCommit": lineage["git.commit"]},
            }
        )
    if lineage.get("dvc.lock_sha256"):
        dependencies.append({"uri": "dvc.lock", "digest": {"sha256": lineage["dvc.lock_sha256"]}})
    data: dict[str, Any] = lineage["data"] if isinstance(lineage.get("data"), dict) else {}
    dependencies += [{"uri": path, "digest": {"md5": md5}} for path, md5 in sorted(data.items())]
    made = builder()
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"model": model, "version": version, "params": lineage.get("params") or {}},
            "internalParameters": {
                k: lineage[k] for k in ("python", "device", "learner", "runner.name") if k in lineage
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": made["id"]},
            "metadata": {
                **({"invocationId": made["invocation"]} if made["invocation"] else {}),
                "finishedOn": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        },
    }
    document = Statement(subjects, SLSA_PROVENANCE, predicate)
    document.validate()
    # the predicate as written: protobuf's Struct would turn every number into a float
    return {**json_format.MessageToDict(document.pb), "predicate": predicate}


def sign_version(registry: Registry, model: str, version: int) -> signing.Signature | None:
    """Sign a registered version's files and its provenance with this machine's signer, keep both
    bundles with its run and tag the version; None (nothing changed) when there is no signer."""
    import mlflow

    found = registry.version(model, version)
    folder = f"{names.SIGNING_BUNDLES}/{model}-v{int(version)}"
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(mlflow.artifacts.download_artifacts(artifact_uri=found.source, dst_path=f"{tmp}/files"))
        out = Path(tmp) / "signing"
        (out / "provenance").mkdir(parents=True)
        made = signing.sign(registry.repo, files, out / signing.BUNDLE)
        if made is None:
            return None
        text = json.dumps(
            statement(registry.repo.project["project"]["slug"], model, version, files, dict(found.tags)),
            indent=2,
            sort_keys=True,
        )
        (out / "provenance" / STATEMENT).write_text(text + "\n")
        signing.sign(registry.repo, out / "provenance", out / "provenance.sig")
        registry.log_artifacts(found.run_id, out, folder)
        kept = state.signed_models(registry.repo.root) / state.name("model", model) / f"v{int(version)}"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(files, kept)  # for GitHub's artifact attestation (train.yml)
    registry.set_tags(model, version, names.signing_tags(folder, made.signer, made.method))
    return made


def provenance_check(
    repo: Repo, verified: Verified, trusted: list[signing.Signer]
) -> tuple[signing.Check, dict[str, Any] | None]:
    """The provenance statement's signature, and the statement when it names exactly these files."""
    if verified.signing is None:
        return signing.Check(signing.Status.UNSIGNED, detail="no provenance (the version is unsigned)"), None
    folder = verified.signing / "provenance"
    result = signing.verify(folder, verified.signing / "provenance.sig", trusted, signing.signers(repo))
    if not result.ok or not (folder / STATEMENT).is_file():
        return result, None
    document = json.loads((folder / STATEMENT).read_text())
    named = {s["name"].split("/", 2)[2]: s["digest"]["sha256"] for s in document.get("subject", [])}
    files = {
        p.relative_to(verified.path).as_posix(): sha256_file(p)
        for p in verified.path.rglob("*")
        if p.is_file()
    }
    if named != files:
        return signing.Check(
            signing.Status.ALTERED,
            result.found,
            result.signer,
            "the statement's subjects are not these files",
        ), None
    return result, document


def audit(registry: Registry, model: str, version: int, envs: list[str]) -> list[dict[str, str]]:
    """The reconciler's checks of one version, alone (`mlops verify`): its files against the
    sha256 recorded at registration, its signature against each environment's trust policy, and
    its signed provenance. Rows of {check, result (pass/fail/-), detail}."""
    from .client import VerifyFailed

    repo = registry.repo
    rows: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            verified = registry.fetch_signed(model, version, Path(tmp))
        except VerifyFailed as exc:
            return [{"check": "artifact sha256", "result": "fail", "detail": str(exc)}]
        rows.append({"check": "artifact sha256", "result": "pass", "detail": verified.sha256})
        listed = signing.signers(repo)
        overall = signing.verify(verified.path, signing.bundle_of(verified), list(listed.values()), listed)
        rows.append(
            {"check": "signature", "result": "pass" if overall.ok else "fail", "detail": overall.detail}
        )
        for env in envs:
            result = signing.check(repo, env, verified)
            refused = signing.refusal(repo, env, model, version, result)
            said = refused or (
                result.detail if result.ok else f"{result.detail}; {env} takes unsigned versions"
            )
            rows.append(
                {"check": f"admitted to {env}", "result": "fail" if refused else "pass", "detail": said}
            )
        proved, document = provenance_check(repo, verified, list(listed.values()))
        detail = proved.detail
        if document is not None:
            run = document["predicate"]["runDetails"]
            commit = next(
                (
                    d["digest"].get("gitCommit")
                    for d in document["predicate"]["buildDefinition"]["resolvedDependencies"]
                    if "gitCommit" in d["digest"]
                ),
                None,
            )
            detail = f"built by {run['builder']['id']} from commit {str(commit)[:12]}; {proved.detail}"
        rows.append(
            {"check": "provenance", "result": "pass" if document is not None else "fail", "detail": detail}
        )
    return rows
