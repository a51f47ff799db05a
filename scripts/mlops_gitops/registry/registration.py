"""After the pipeline: register what it trained, write each version's report, and propose the
passing new versions for the first environment (what `train.yml` does on the GPU runner).

Each version carries its lineage (`tags.lineage_tags`); registering the same pipeline output
again gives back the existing version. A version from uncommitted work is registered all the
same and said to be (`dirty`, `git.uncommitted`): its lineage's commit cannot reproduce it; once
that work is committed, the same output registers again as a clean version.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core import tags as names
from ..core.config import Repo
from ..core.errors import MlopsError
from . import attestation
from . import report as reporting
from .client import Registry
from .lineage import PipelineOutputs


@dataclass
class Registered:
    model: str
    version: int
    created: bool
    run_id: str
    artifact_sha256: str
    signature: dict[str, str] | None = None  # bundle, signer, method (None: unsigned)
    report: dict[str, Any] | None = None  # passed, path
    promotion: dict[str, str] | None = None  # branch, pull_request
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "result": "registered" if self.created else "unchanged",
            "run_id": self.run_id,
            "artifact_sha256": self.artifact_sha256,
            "signed_by": self.signature["signer"] if self.signature else None,
        }
        if self.report is not None:
            row["report"] = self.report
        if self.promotion is not None:
            row["promotion"] = self.promotion
        return row


def trained_models(repo: Repo) -> list[str]:
    """Every model the pipeline has trained here (its estimator is under pipelines/out/)."""
    found = [m for m in sorted(repo.models) if PipelineOutputs(m, repo.root).estimator.is_file()]
    if not found:
        raise MlopsError("no trained model found under pipelines/out/ (expected `make train` to have run)")
    return found


def register(
    repo: Repo,
    registry: Registry,
    models: list[str],
    with_report: bool = False,
    baseline: str = "production",
    propose: Callable[[str, int], dict[str, Any]] | None = None,
) -> list[Registered]:
    """Register each model's pipeline output; with_report, write and record its report; with
    `propose`, call it for each new version whose report passed (the command's promotion, which
    answers its branch and pull request: the registry never reaches into deployments)."""
    out = []
    for name in models:
        made = registry.register(name)
        row = Registered(
            made.model,
            made.version,
            made.created,
            made.run_id,
            names.artifact_of(made.tags)["sha256"] or "",
        )
        _sign(registry, row, made.tags)
        if row.signature is None:
            row.warnings.append(
                f"{name} v{made.version}: unsigned (no signing key here: `mlops keys init`, or "
                "MLOPS_SIGNING_KEY from the team's secret); protected environments refuse it"
            )
        if os.environ.get("ACT"):
            row.warnings.append(
                "GitHub's artifact attestation (actions/attest-build-provenance) runs on GitHub only: "
                "skipped under act (the version's own provenance statement is signed all the same)"
            )
        if with_report:
            result, _, folder = reporting.write(repo, registry, name, str(made.version), baseline)
            row.report = {"passed": result.passed, "path": str(folder / "report.md")}
            if result.passed and propose is not None and made.created:
                row.promotion = propose(name, int(made.version))
        out.append(row)
    return out


def _sign(registry: Registry, row: Registered, tags: dict[str, str]) -> None:
    """Sign a version that is not yet (new, or registered and then killed before it was signed);
    a signer the trust policy does not list is said: what it signs verifies nowhere."""
    from . import signing

    row.signature = names.signing_of(tags)
    if row.signature is None:
        made = attestation.sign_version(registry, row.model, row.version)
        if made is not None:
            row.signature = {"bundle": "", "signer": made.signer, "method": made.method}
    listed = {signing.identity_of(s) for s in signing.signers(registry.repo).values()}
    if row.signature is not None and row.signature["signer"] not in listed:
        row.warnings.append(
            f"{row.model} v{row.version}: signed by {row.signature['signer']}, which mlops.yaml's signing "
            "does not list: no environment takes it (expected the team's key, or a listed identity)"
        )
