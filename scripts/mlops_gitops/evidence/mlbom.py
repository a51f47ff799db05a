"""The version's ML-BOM: CycloneDX 1.6, built with cyclonedx-python-lib, checked by its own
strict JSON validator before it enters a pack.

    metadata.component   the model (machine-learning-model): its artifact's sha256, its signer
                         and the signature's status as properties, and its model card
    components           each dataset its pipeline read (data, with the md5 DVC recorded) and
                         each package of the training run (library, as a pypi purl)
    dependencies         the model on every one of them

cyclonedx-python-lib has no model card type yet (its Component.model_card is a placeholder), so
the card is added to the serialized document, then the whole document validated against the
1.6 schema: a card that does not fit the schema fails here, not at the auditor's.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from ..core.errors import MlopsError

TASKS = {"binary-classification": "classification", "multiclass-classification": "classification"}


def _model(model: str, version: int, lineage: dict[str, Any], signing: dict[str, Any]) -> Any:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component, ComponentType

    properties = {
        "mlops:signature.status": str(signing.get("status", "unsigned")),
        "mlops:signature.signer": str(signing.get("signer") or signing.get("found") or "none"),
        "mlops:git.commit": str(lineage["code"].get("commit") or ""),
        "mlops:run_id": str(lineage.get("run_id") or ""),
        "mlops:training.learner": str(lineage["training"].get("learner") or ""),
        "mlops:training.device": str(lineage["training"].get("device") or ""),
    }
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=model,
        version=str(version),
        bom_ref=f"model:{model}@{version}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=lineage["artifact_sha256"])]
        if lineage.get("artifact_sha256")
        else [],
        properties=[Property(name=k, value=v) for k, v in properties.items() if v],
    )


def _parts(lineage: dict[str, Any]) -> list[Any]:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    parts = []
    for path, md5 in sorted((lineage.get("data") or {}).items()):
        digest = str(md5).removesuffix(".dir")  # DVC names a directory's listing md5 "<md5>.dir"
        parts.append(
            Component(
                type=ComponentType.DATA,
                name=path,
                bom_ref=f"data:{path}",
                hashes=[HashType(alg=HashAlgorithm.MD5, content=digest)] if len(digest) == 32 else [],
                properties=[Property(name="mlops:dvc.md5", value=str(md5))],
            )
        )
    packages = (lineage.get("environment") or {}).get("packages") or {}
    for name, version in sorted(packages.items()):
        purl = PackageURL(type="pypi", name=name.lower(), version=str(version))
        parts.append(
            Component(
                type=ComponentType.LIBRARY, name=name, version=str(version), purl=purl, bom_ref=str(purl)
            )
        )
    return parts


def card(definition: dict[str, Any], metrics: dict[str, Any], datasets: list[str]) -> dict[str, Any]:
    """The CycloneDX 1.6 modelCard of the model's definition (model.yaml) and measured metrics."""
    words = definition.get("card") or {}
    considerations: dict[str, Any] = {
        "useCases": [words["intended_use"]] if words.get("intended_use") else [],
        "technicalLimitations": [w for w in (words.get("limitations"), words.get("out_of_scope")) if w],
        "ethicalConsiderations": [{"name": words["ethical_considerations"]}]
        if words.get("ethical_considerations")
        else [],
        "fairnessAssessments": [
            {"groupAtRisk": feature}
            for feature in (definition.get("fairness") or {}).get("sensitive_features", {})
        ],
    }
    return {
        "modelParameters": {
            "approach": {"type": "supervised"},
            "task": TASKS.get(str(definition.get("task")), "regression"),
            "datasets": [{"ref": f"data:{path}"} for path in datasets],
            "inputs": [{"format": "tabular"}],
            "outputs": [
                {
                    "format": "scores"
                    if str(definition.get("task", "")).endswith("classification")
                    else "value"
                }
            ],
        },
        "quantitativeAnalysis": {
            "performanceMetrics": [
                {"type": name, "value": str(value)}
                for name, value in sorted(metrics.items())
                if isinstance(value, int | float)
            ]
        },
        "considerations": {k: v for k, v in considerations.items() if v},
    }


def build(
    model: str,
    version: int,
    definition: dict[str, Any],
    lineage: dict[str, Any],
    metrics: dict[str, Any],
    signing: dict[str, Any],
) -> dict[str, Any]:
    """The ML-BOM of one version, as a JSON document the CycloneDX 1.6 schema accepts (the same
    input gives the same document: a pack is reproducible)."""
    from cyclonedx.model.bom import Bom
    from cyclonedx.output.json import JsonV1Dot6

    top = _model(model, version, lineage, signing)
    parts = _parts(lineage)
    bom = Bom(
        serial_number=uuid.uuid5(
            uuid.NAMESPACE_URL, f"mlops:{model}@{version}:{lineage.get('artifact_sha256')}"
        )
    )
    bom.metadata.component = top
    bom.metadata.timestamp = datetime.fromisoformat(
        str(lineage.get("registered_at") or "1980-01-01T00:00:00Z")
    )
    for part in parts:
        bom.components.add(part)
    bom.register_dependency(top, parts)
    document: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    datasets = [p.name for p in parts if p.bom_ref.value.startswith("data:")]
    document["metadata"]["component"]["modelCard"] = card(definition, metrics, datasets)
    problem = validate(document)
    if problem:
        raise MlopsError(f"ML-BOM of {model} v{version}: {problem} (expected a CycloneDX 1.6 document)")
    return document


def validate(document: dict[str, Any]) -> str | None:
    """CycloneDX's own strict validator on the document: None, or its first complaint."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    return None if error is None else str(error)[:300]
