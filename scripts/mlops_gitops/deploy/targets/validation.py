"""What an in-cluster verifier needs to check a model's signature again inside the pod, before
the server loads it (`deploy.kserve.verifier: model-validation-operator`).

sigstore/model-validation-operator (a proof of concept) injects an init container running
`model_signing verify` into every pod labelled `validation.rhtas.redhat.com/ml: "true"`, with
the arguments its `ModelValidation` resource (ml.sigstore.dev/v1alpha1) gives and the volume
mounts of the pod's containers. Rendered here, beside each InferenceService, as
`<output_dir>/<env>/<model>.signing.yaml`:

    ConfigMap        <model>-<env>-signing: the bundle (model.sig) and the public key the
                     environment's trust policy verified it with (<signer>.pub)
    ModelValidation  model.path /mnt/models (where KServe's storage initializer puts the
                     model), signaturePath and privateKeyConfig.keyPath (the public key: the
                     operator passes it as --public_key) under /mnt/signing, or sigstoreConfig
                     with the workflow identity for a keyless signature

and the InferenceService gets the label and the ConfigMap mounted at /mnt/signing in its model
container. The operator's limits, as of its last release: it takes exactly one ModelValidation
in the cluster (so one deployment per cluster is verified this way), and its init container
must run after KServe's storage initializer (both are injected by admission webhooks). The
reconciler's own verification before publishing does not depend on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LABEL = "validation.rhtas.redhat.com/ml"
MODELS = "/mnt/models"  # where KServe's storage initializer puts the model
MOUNT = "/mnt/signing"
VOLUME = "mlops-signing"
API = "ml.sigstore.dev/v1alpha1"


def documents(inference_service: dict[str, Any], bundle: Path, signer: Any) -> list[dict[str, Any]]:
    """The ConfigMap and the ModelValidation for `inference_service` (changed in place: the label,
    the volume and its mount), for a version whose `bundle` the trust policy's `signer` verified."""
    meta = inference_service["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    data = {"model.sig": bundle.read_text()}
    if signer.key is not None:
        data[f"{signer.name}.pub"] = signer.key.read_text()
        config: dict[str, Any] = {"privateKeyConfig": {"keyPath": f"{MOUNT}/{signer.name}.pub"}}
    else:
        config = {
            "sigstoreConfig": {"certificateIdentity": signer.identity, "certificateOidcIssuer": signer.issuer}
        }
    labels = {"app.kubernetes.io/managed-by": "mlops-gitops"}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-signing", "namespace": namespace, "labels": labels},
        "data": data,
    }
    validation = {
        "apiVersion": API,
        "kind": "ModelValidation",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"model": {"path": MODELS, "signaturePath": f"{MOUNT}/model.sig"}, "config": config},
    }
    meta.setdefault("labels", {})[LABEL] = "true"
    predictor = inference_service["spec"]["predictor"]
    predictor["volumes"] = [{"name": VOLUME, "configMap": {"name": f"{name}-signing"}}]
    predictor["model"]["volumeMounts"] = [{"name": VOLUME, "mountPath": MOUNT, "readOnly": True}]
    return [config_map, validation]
