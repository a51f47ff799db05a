"""The model store (content-addressed, re-verified), the collector's manifests and image, and
what `mlops validate` asks of a KServe deployment. Real files, a real S3-compatible server
(moto, in the peers' environment, standing in for the bucket) and Kubernetes' own schemas
(kubernetes-validate)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT, run_mlops
from . import peers
from .mlflow_server import free_port


def model_dir(tmp_path: Path) -> tuple[object, str]:
    """A small model directory and its sha256, as registration records it."""
    from mlops_gitops.registry.client import Verified
    from mlops_gitops.registry.lineage import sha256_tree

    path = tmp_path / "artifact" / "model"
    (path / "sub").mkdir(parents=True)
    (path / "MLmodel").write_text("mlflow_version: 3.17.2\n")
    (path / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    return Verified(path, sha256_tree(path)), sha256_tree(path)


def test_a_directory_store_is_content_addressed_idempotent_and_re_verified(tmp_path: Path) -> None:
    from mlops_gitops.registry.client import VerifyFailed
    from mlops_gitops.registry.modelstore import for_settings, publish

    verified, digest = model_dir(tmp_path)
    store = for_settings(tmp_path, {"model_store": "store"})
    uri = publish(store, verified)  # type: ignore[arg-type]
    assert uri == (tmp_path / "store" / "sha256" / digest).as_uri()
    copy = tmp_path / "store" / "sha256" / digest
    assert (copy / "sub" / "weights.bin").read_bytes() == bytes(range(256)) * 64
    stamp = copy.stat().st_mtime_ns
    assert publish(store, verified) == uri and copy.stat().st_mtime_ns == stamp  # there already: kept
    (copy / "sub" / "weights.bin").write_bytes(b"tampered")
    with pytest.raises(VerifyFailed, match=f"hashes to .*, not {digest[:12]}"):
        publish(store, verified)  # type: ignore[arg-type]


def test_pvc_and_bad_settings(tmp_path: Path) -> None:
    from mlops_gitops.core.errors import MlopsError
    from mlops_gitops.registry.modelstore import for_settings, publish

    verified, digest = model_dir(tmp_path)
    mount = tmp_path / "mnt"
    store = for_settings(
        tmp_path, {"model_store": "pvc://models-claim/team", "model_store_mount": str(mount)}
    )
    # KServe mounts the claim and reads the path after pvc://claim/: the same path as under the mount
    assert publish(store, verified) == f"pvc://models-claim/team/sha256/{digest}"  # type: ignore[arg-type]
    assert (mount / "team" / "sha256" / digest / "MLmodel").is_file()
    for settings, message in (
        ({}, "deploy.kserve.model_store: missing"),
        ({"model_store": "pvc://claim"}, "deploy.kserve.model_store_mount: missing"),
        ({"model_store": "azure://x"}, "scheme azure:// (expected s3, gs, pvc or a directory)"),
    ):
        with pytest.raises(MlopsError, match=re.escape(message)):
            for_settings(tmp_path, settings)


@pytest.mark.slow
def test_s3_and_gs_stores_through_an_s3_compatible_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """s3:// with AWS_ENDPOINT_URL (MinIO and the like), gs:// through GCS's S3 API
    (MLOPS_GS_ENDPOINT_URL here): both put the directory under its sha256 and read it back."""
    import boto3
    from mlops_gitops.registry.modelstore import for_settings, publish

    verified, digest = model_dir(tmp_path)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [peers.bin_of("moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "MLOPS_GS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    with peers.serving(command, f"{endpoint}/moto-api/", tmp_path / "moto" / "log"):
        client = boto3.client("s3", endpoint_url=endpoint)
        for bucket in ("s3-models", "gcs-models"):
            client.create_bucket(Bucket=bucket)
        s3 = for_settings(tmp_path, {"model_store": "s3://s3-models/team/a"})
        assert publish(s3, verified) == f"s3://s3-models/team/a/sha256/{digest}"  # type: ignore[arg-type]
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="s3-models")["Contents"])
        assert keys == [f"team/a/sha256/{digest}/MLmodel", f"team/a/sha256/{digest}/sub/weights.bin"]
        gs = for_settings(tmp_path, {"model_store": "gs://gcs-models"})
        assert publish(gs, verified) == f"gs://gcs-models/sha256/{digest}"  # type: ignore[arg-type]
        client.put_object(Bucket="s3-models", Key=f"team/a/sha256/{digest}/MLmodel", Body=b"changed")
        from mlops_gitops.registry.client import VerifyFailed

        with pytest.raises(VerifyFailed):
            publish(s3, verified)  # type: ignore[arg-type]


def test_kserve_storage_fetches_a_directory_store(tmp_path: Path) -> None:
    """The file:// URI of a directory store, as KServe's storage initializer fetches it."""
    from mlops_gitops.registry.lineage import sha256_tree
    from mlops_gitops.registry.modelstore import for_settings, publish

    verified, digest = model_dir(tmp_path)
    uri = publish(for_settings(tmp_path, {"model_store": str(tmp_path / "shared")}), verified)  # type: ignore[arg-type]
    code = "import sys\nfrom kserve_storage import Storage\nStorage.download(sys.argv[1], sys.argv[2])"
    peers.run(code, uri, str(tmp_path / "mnt-models"))
    # it links each top-level entry into place (a directory too); the model server reads through
    seen = shutil.copytree(tmp_path / "mnt-models", tmp_path / "as-read", symlinks=False)
    assert sha256_tree(seen) == digest


def test_validate_wants_a_model_store_once_a_version_goes_to_kserve(tmp_path: Path) -> None:
    from .workflows import sandbox

    repo = sandbox(tmp_path / "repo")
    manifest = repo / "environments/staging/churn.yaml"
    manifest.write_text(
        manifest.read_text().replace("kind: local", "kind: kserve").replace("version: null", "version: 3")
    )
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 1
    assert (
        "mlops.yaml: deploy.kserve.model_store: missing (environments/staging/churn.yaml deploys to KServe)"
        in proc.stdout
    )
    project = repo / "mlops.yaml"
    project.write_text(project.read_text().replace('model_store: ""', "model_store: pvc://models"))
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 1 and "deploy.kserve.model_store_mount: missing" in proc.stdout
    project.write_text(
        project.read_text().replace("model_store: pvc://models", "model_store: s3://team-models")
    )
    assert run_mlops("validate", cwd=repo).returncode == 0


def kubernetes_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [peers.bin_of("kubernetes-validate"), "--strict", str(path)], capture_output=True, text=True
    )


def test_the_collectors_manifests_pass_kubernetes_schemas(tmp_path: Path) -> None:
    collect = ROOT / "deploy" / "collect" / "collect.yaml"
    proc = kubernetes_validate(collect)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(collect.read_text())]
    assert kinds == ["PersistentVolumeClaim", "Deployment", "Service", "NetworkPolicy"]
    # the validator validates: a misspelt field fails it
    broken = tmp_path / "broken.yaml"
    broken.write_text(collect.read_text().replace("containerPort: 8080", "containerPortt: 8080"))
    assert kubernetes_validate(broken).returncode != 0
    # the Deployment runs the command its image's entry point and `mlops collect` take, on the
    # port the Service targets, with the state directory on the claim
    documents = {d["kind"]: d for d in yaml.safe_load_all(collect.read_text())}
    container = documents["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:1] == ["collect"]
    helped = run_mlops(*container["args"][:1], "--help", cwd=tmp_path)
    for option in container["args"][1::2]:
        assert option in helped.stdout
    assert container["ports"][0]["containerPort"] == int(
        container["args"][container["args"].index("--port") + 1]
    )
    state = next(e["value"] for e in container["env"] if e["name"] == "MLOPS_STATE_DIR")
    assert any(m["mountPath"] == state for m in container["volumeMounts"])
    logger = yaml.safe_load((ROOT / "mlops.yaml").read_text())["deploy"]["kserve"]["logger_url"]
    service = documents["Service"]["metadata"]
    assert logger == f"http://{service['name']}.{service['namespace']}.svc.cluster.local"
    # who may send: only KServe's predictor pods of this namespace (the labels KServe's
    # controller sets: component, serving.kserve.io/inferenceservice), on the collector's port
    pod = documents["Deployment"]["spec"]["template"]
    policy = documents["NetworkPolicy"]
    assert policy["metadata"]["namespace"] == service["namespace"]
    assert policy["spec"]["podSelector"]["matchLabels"] == pod["metadata"]["labels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": container["ports"][0]["containerPort"]}]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}  # no namespaceSelector, no ipBlock: this namespace's pods
    assert source["podSelector"]["matchLabels"] == {"component": "predictor"}
    assert source["podSelector"]["matchExpressions"] == [
        {"key": "serving.kserve.io/inferenceservice", "operator": "Exists"}
    ]
    # the token from a secret (none: the collector refuses to listen), never a literal value
    token = next(e for e in container["env"] if e["name"] == "MLOPS_COLLECT_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["optional"] is True and "value" not in token
    # --manifests reads the checkout the git-sync sidecar keeps current
    args = container["args"]
    sync = next(c for c in pod["spec"]["containers"] if c["name"] == "git-sync")
    flags = dict(a.lstrip("-").split("=", 1) for a in sync["args"])
    assert args[args.index("--manifests") + 1] == f"{flags['root']}/{flags['link']}"
    mounts = {c["name"]: {m["name"]: m for m in c["volumeMounts"]} for c in pod["spec"]["containers"]}
    assert (
        mounts["collect"]["checkout"]["mountPath"]
        == flags["root"]
        == mounts["git-sync"]["checkout"]["mountPath"]
    )
    assert mounts["collect"]["checkout"]["readOnly"] is True


def test_the_collectors_image_holds_what_mlops_collect_reads(tmp_path: Path) -> None:
    """No image is built here (no container engine); what its Dockerfile copies is enough for
    `mlops validate`, which `mlops collect` runs first, and its command is the Deployment's."""
    dockerfile = (ROOT / "deploy" / "collect" / "Dockerfile").read_text()
    context = tmp_path / "image"
    context.mkdir()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            *sources, dest = line.split()[1:]
            for source in sources:
                target = context / (source if dest.endswith("/") or dest == "./" else dest)
                target.parent.mkdir(parents=True, exist_ok=True)
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target)
                else:
                    shutil.copy(ROOT / source, target)
    assert (context / "scripts" / "mlops_gitops" / "monitor" / "collect.py").is_file()
    proc = run_mlops("validate", cwd=context)
    assert proc.returncode == 0, proc.stderr
    cmd = json.loads(re.search(r"^CMD (.*)$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    deployment = next(
        d
        for d in yaml.safe_load_all((ROOT / "deploy/collect/collect.yaml").read_text())
        if d["kind"] == "Deployment"
    )
    assert cmd == deployment["spec"]["template"]["spec"]["containers"][0]["args"]
