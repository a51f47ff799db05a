"""Signed at registration, verified before serving (OpenSSF model-signing), on real files: a real
MLflow registry (sqlite) and artifact store, real model servers (the local target), the kserve
target's directory model store fetched by KServe's own storage initializer (`kserve-storage`),
and model-signing's own verifier and CLI for the bundles and the provenance statement.

What an attacker with write access to the registry can do, and what each leaves serving:

    missing     the bundle the version names is removed
    altered     a model file is changed after signing (and the sha256 tag made to match it)
    untrusted   the version is signed with a key mlops.yaml's trust policy does not list
    other       the version points at a valid signature of another version's files
    unsigned    the signature's tags are removed (protected environments refuse it)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import run_mlops
from .helpers import http, served_repo, set_manifest, url_of
from .registered import register_version, registry_of
from .test_kserve import _kserve_repo, valid
from .test_kserve_peers import _boto, bucket, configure, download

__all__ = ["bucket", "served_repo"]  # fixtures: `repo` is a copy of the registered repository (signed v1-v4)

pytestmark = pytest.mark.slow

BAD = ("missing", "altered", "untrusted", "other", "unsigned")


def _path(uri: str) -> Path:
    return Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))


def bundle_of(registry: Any, version: int) -> Path:
    """Where the version's bundle lies in the registry's artifact store (a local directory)."""
    found = registry.version("churn", version)
    folder = json.loads(json.dumps(dict(found.tags)))["mlops.signing.bundle"]
    return _path(registry.client.get_run(found.run_id).info.artifact_uri) / folder / "model.sig"


@pytest.fixture
def foreign_key(tmp_path: Path) -> str:
    """A private key nobody listed in mlops.yaml (PEM text)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def bad_versions(repo: Path, foreign: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """One version per attack above, each registered (and signed) as `mlops register` would."""
    from mlops_gitops.registry.client import stored_sha256

    registry = registry_of(repo)
    made: dict[str, int] = {}
    made["missing"] = register_version(repo, "churn", seed=5)
    bundle_of(registry, made["missing"]).unlink()

    made["altered"] = register_version(repo, "churn", seed=6)
    found = registry.version("churn", made["altered"])
    files = _path(registry.client.get_logged_model(found.source.removeprefix("models:/")).artifact_location)
    (files / "input_example.json").write_text('{"columns": [], "data": []}')  # after signing
    registry.set_tags("churn", made["altered"], {"mlops.artifact_sha256": stored_sha256(found.source)})

    with monkeypatch.context() as env:
        env.setenv("MLOPS_SIGNING_KEY", foreign)
        made["untrusted"] = register_version(repo, "churn", seed=8)

    made["other"] = register_version(repo, "churn", seed=9)
    shutil.copyfile(bundle_of(registry, 1), bundle_of(registry, made["other"]))  # v1's, valid for v1

    made["unsigned"] = register_version(repo, "churn", seed=10)
    for key in ("mlops.signing.bundle", "mlops.signing.signer", "mlops.signing.method"):
        registry.client.delete_model_version_tag("churn", str(made["unsigned"]), key)
    return made


EXPECTED = {
    "missing": "(missing): its bundle model.sig is not there",
    "altered": "(altered): the files differ from what team (key sha256:",
    "untrusted": "(untrusted): signed by sha256:",
    "other": "(altered): the files differ from what team (key sha256:",
    "unsigned": "(unsigned): the version is unsigned",
}


def refused(repo: Path, env: str, version: int) -> str:
    """Reconcile `env` to `version`: it must fail at the verify step; the one line it gives."""
    set_manifest(repo, env, f"v{version} to {env}", version=version)
    proc = run_mlops("reconcile", "--env", env, "-o", "json", cwd=repo)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert (result["result"], result["reason"]) == ("failed", "VerifyFailed"), result
    return str(result["message"])


def test_every_refused_signature_leaves_the_previous_version_serving_locally(
    repo: Path, foreign_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_manifest(repo, "production", "v1 to production", version=1)
    first = run_mlops("reconcile", "--env", "production", "-o", "json", cwd=repo)
    assert first.returncode == 0, first.stdout + first.stderr
    url = url_of(repo, "production")
    bad = bad_versions(repo, foreign_key, monkeypatch)
    for attack, version in bad.items():
        message = refused(repo, "production", version)
        assert f"churn v{version}: refused by production's trust policy {EXPECTED[attack]}" in message, (
            message
        )
        assert "expected a signature by team (key sha256:" in message and "\n" not in message
        status, meta = http("GET", f"{url}/metadata")  # the same server, still v1
        assert status == 200 and meta["traffic"] == [{"version": 1, "percent": 100}], (attack, meta)

    # the gate sees what the reconciler sees: the facts of the last manifest change (the unsigned one)
    facts_dir = repo / ".mlops/test-facts"
    run_mlops(
        "facts",
        "--base",
        "HEAD~1",
        "--now",
        "2026-12-03T10:00:00Z",
        "--out",
        str(facts_dir),
        cwd=repo,
        check=True,
    )
    (doc_path,) = facts_dir.glob("*.json")
    signing = json.loads(doc_path.read_text())["version"]["signing"]
    assert (signing["signed"], signing["verified"], signing["status"], signing["required"]) == (
        False,
        False,
        "unsigned",
        True,
    )
    gate = run_mlops("check", str(doc_path), "--namespace", "promotion", "-o", "json", cwd=repo)
    messages = [f["msg"] for report in json.loads(gate.stdout) for f in report["failures"]]
    assert any("production requires a verified signature by one of its signers" in m for m in messages), (
        messages
    )

    # a scratch-like environment (not protected, no require_signature) takes an unsigned version,
    # and no environment takes one whose signature fails
    set_manifest(repo, "staging", "unsigned to staging", version=bad["unsigned"])
    staged = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo)
    assert staged.returncode == 0, staged.stdout + staged.stderr
    assert "(altered)" in refused(repo, "staging", bad["altered"])

    good = register_version(repo, "churn", seed=11)
    set_manifest(repo, "production", "a good signature", version=good)
    done = run_mlops("reconcile", "--env", "production", "-o", "json", cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["results"][0]["version"] == good
    assert http("GET", f"{url_of(repo, 'production')}/metadata")[1]["traffic"] == [
        {"version": good, "percent": 100}
    ]

    # the auditor's view: the same checks, alone
    ok = run_mlops("verify", "churn", "--version", str(good), "-o", "json", cwd=repo)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    checks = {c["check"]: c for c in json.loads(ok.stdout)["checks"]}
    assert {c["result"] for c in checks.values()} == {"pass"}
    assert set(checks) == {
        "artifact sha256",
        "signature",
        "admitted to staging",
        "admitted to production",
        "provenance",
    }
    assert "built by urn:mlops-gitops:host:" in checks["provenance"]["detail"]
    worse = run_mlops("verify", "churn", "--version", str(bad["untrusted"]), "-o", "json", cwd=repo)
    assert worse.returncode == 1
    failing = {c["check"] for c in json.loads(worse.stdout)["checks"] if c["result"] == "fail"}
    assert failing == {"signature", "admitted to staging", "admitted to production", "provenance"}
    table = run_mlops("verify", "churn", "--version", str(bad["unsigned"]), "--env", "staging", cwd=repo)
    assert table.returncode == 1 and "takes unsigned versions" in table.stdout  # admitted, yet unsigned


def test_a_second_fetch_never_touches_the_bundle_a_first_one_is_checking(repo: Path, tmp_path: Path) -> None:
    """Two environments' reconcilers share one store and run at once (reconcile.yml's matrix):
    the bundle one of them fetched stays in place, the same file, while the other fetches the
    same version; a bundle replaced in the registry since lands beside it, never over it."""
    from mlops_gitops.registry import signing

    registry = registry_of(repo)
    version = register_version(repo, "churn", seed=12)  # its own files (v1-v4 are shared copies)
    store = tmp_path / "store"
    first = registry.fetch_signed("churn", version, store)
    assert first.signing is not None
    bundle = first.signing / signing.BUNDLE
    inode = bundle.stat().st_ino
    second = registry.fetch_signed("churn", version, store)  # the other environment's, meanwhile
    assert second.signing == first.signing and bundle.stat().st_ino == inode
    assert signing.check(registry.repo, "production", first).ok
    shutil.copyfile(bundle_of(registry, 1), bundle_of(registry, version))  # v1's bundle, over it
    third = registry.fetch_signed("churn", version, store)
    assert third.signing != first.signing and bundle.stat().st_ino == inode
    assert signing.check(registry.repo, "production", third).status == signing.Status.ALTERED


def operator_args(validation: dict[str, Any], mounts: dict[str, Path]) -> list[str]:
    """A stand-in for sigstore/model-validation-operator's webhook (Go, cannot run here): the
    arguments its validationConfigToArgs gives the injected `model_signing` init container for a
    ModelValidation, with the pod's mount paths mapped onto this machine's folders."""

    def local(path: str) -> str:
        for mount, folder in mounts.items():
            if path.startswith(mount):
                return str(folder) + path[len(mount) :]
        raise AssertionError(f"{path}: not under a mounted volume")

    spec = validation["spec"]
    key = spec["config"]["privateKeyConfig"]["keyPath"]
    signature = local(spec["model"]["signaturePath"])
    return [
        "verify",
        "key",
        f"--signature={signature}",
        "--public_key",
        local(key),
        local(spec["model"]["path"]),
    ]


def model_signing_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """model-signing's own command line (what the operator's init container image runs)."""
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *args], capture_output=True, text=True, timeout=120
    )


def stored(bucket: dict[str, str]) -> list[str]:
    """Every key in the model store's bucket."""
    import boto3

    client = boto3.client("s3", endpoint_url=bucket["AWS_ENDPOINT_URL"], **_boto(bucket))
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket="models").get("Contents", []))


def test_the_kserve_target_verifies_before_publishing_and_renders_the_in_cluster_check(
    registered: Path,
    tmp_path: Path,
    bucket: dict[str, str],
    foreign_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _kserve_repo(registered, tmp_path)
    configure(repo, model_store="s3://models/store", verifier="model-validation-operator")
    for name, value in bucket.items():  # the reconciler's store credentials (and bad_versions')
        monkeypatch.setenv(name, value)

    set_manifest(repo, "production", "v1 to production", version=1)
    first = run_mlops("reconcile", "--env", "production", "-o", "json", cwd=repo, env_extra=bucket)
    assert first.returncode == 0, first.stdout + first.stderr
    isvc_path = repo / "deploy/kserve/production/churn.yaml"
    isvc = yaml.safe_load(isvc_path.read_text())
    valid(isvc)  # KServe's own schema, with the volume and its mount
    digest = isvc["metadata"]["annotations"]["mlops-gitops.dev/artifact-sha256"]
    assert f"store/signatures/sha256/{digest}.sig" in stored(bucket)  # the bundle beside the model
    assert (
        isvc["metadata"]["annotations"]["mlops-gitops.dev/signature"]
        == f"s3://models/store/signatures/sha256/{digest}.sig"
    )
    assert isvc["metadata"]["labels"]["validation.rhtas.redhat.com/ml"] == "true"
    config_map, validation = yaml.safe_load_all(
        (repo / "deploy/kserve/production/churn.signing.yaml").read_text()
    )
    assert (config_map["kind"], validation["kind"], validation["apiVersion"]) == (
        "ConfigMap",
        "ModelValidation",
        "ml.sigstore.dev/v1alpha1",
    )

    # inside the pod: KServe's storage initializer fetches storageUri to /mnt/models, the
    # ConfigMap is mounted at /mnt/signing, and the operator's init container verifies
    models, signing = tmp_path / "pod/mnt/models", tmp_path / "pod/mnt/signing"
    download(isvc["spec"]["predictor"]["model"]["storageUri"], models, bucket)
    signing.mkdir(parents=True)
    for name, text in config_map["data"].items():
        (signing / name).write_text(text)
    args = operator_args(validation, {"/mnt/models": models, "/mnt/signing": signing})
    checked = model_signing_cli(*args)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (models / "MLmodel").write_text((models / "MLmodel").read_text() + "\n# changed in the pod\n")
    assert model_signing_cli(*args).returncode != 0

    before = (isvc_path.read_text(), stored(bucket))
    bad = bad_versions(repo, foreign_key, monkeypatch)
    for attack, version in bad.items():
        message = refused(repo, "production", version)
        assert f"churn v{version}: refused by production's trust policy {EXPECTED[attack]}" in message, (
            message
        )
        assert (isvc_path.read_text(), stored(bucket)) == before, attack  # nothing published; still v1


def test_the_provenance_statement_and_the_ml_bom_verify_with_their_own_tools(
    served: Path, tmp_path: Path
) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    repo = served
    registry = registry_of(repo)
    folder = bundle_of(registry, 1).parent

    def statement_checks(statement_folder: Path) -> subprocess.CompletedProcess[str]:
        signature = str(folder / "provenance.sig")
        key = str(repo / "keys/team.pub")
        return model_signing_cli(
            "verify", "key", "--signature", signature, "--public_key", key, str(statement_folder)
        )

    verified = statement_checks(folder / "provenance")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    statement = json.loads((folder / "provenance/provenance.intoto.json").read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {"gitCommit": "0" * 40} in [d["digest"] for d in dependencies]
    assert {"md5": "md5"} in [d["digest"] for d in dependencies]  # the dataset's hash, from the lineage
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["params"] == {"seed": 7}
    copy = tmp_path / "statement"
    shutil.copytree(folder / "provenance", copy)
    (copy / "provenance.intoto.json").write_text(
        json.dumps(
            {
                **statement,
                "predicate": {
                    **statement["predicate"],
                    "runDetails": {"builder": {"id": "urn:someone-else"}},
                },
            }
        )
    )
    forged = statement_checks(copy)
    assert forged.returncode != 0

    built = run_mlops("evidence", "build", "churn", "--env", "production", "--version", "1", cwd=repo)
    assert built.returncode in (0, 1), built.stderr
    (pack,) = (repo / ".mlops/evidence/production").glob("churn-v1.zip")
    import zipfile

    with zipfile.ZipFile(pack) as archive:
        bom_text = archive.read("supply-chain/ml-bom.cdx.json").decode()
        signature = json.loads(archive.read("supply-chain/signature.json"))
        assert "supply-chain/model.sig" in archive.namelist()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(bom_text) is None
    bom = json.loads(bom_text)
    model = bom["metadata"]["component"]
    assert (model["type"], model["name"], model["version"]) == ("machine-learning-model", "churn", "1")
    assert model["modelCard"]["considerations"]["useCases"] == ["intended_use of churn, written by its team"]
    assert any(c["type"] == "data" and c["name"] == "pipelines/data/churn/raw.csv" for c in bom["components"])
    properties = {p["name"]: p["value"] for p in model["properties"]}
    assert (
        properties["mlops:signature.status"] == "verified" and properties["mlops:signature.signer"] == "team"
    )
    assert signature["verified"] is True and signature["signer"] == "team"


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Path]:
    from .workflows import sandbox

    yield sandbox(tmp_path / "repo")


def test_keys_init_once_and_a_key_outside_the_repository_is_refused(fresh: Path) -> None:
    made = run_mlops("keys", "init", "-o", "json", cwd=fresh)
    assert made.returncode == 0, made.stderr
    row = json.loads(made.stdout)
    assert (row["result"], row["public"], row["listed"]) == ("created", "keys/team.pub", True)
    private = Path(row["private"])
    assert private.stat().st_mode & 0o777 == 0o600 and private.is_relative_to(fresh / ".mlops")
    assert "PRIVATE" not in (fresh / "keys/team.pub").read_text()
    assert subprocess.run(["git", "check-ignore", "-q", str(private)], cwd=fresh).returncode == 0
    again = run_mlops("keys", "init", "-o", "json", cwd=fresh)
    assert json.loads(again.stdout)["result"] == "unchanged"
    private.unlink()  # another machine: the public half committed, the private half a secret
    lost = run_mlops("keys", "init", cwd=fresh)
    assert (
        lost.returncode != 0
        and "keys/team.pub: exists, but its private half is not on this machine" in lost.stderr
    )

    text = (fresh / "mlops.yaml").read_text().replace("team: keys/team.pub", "team: ../../outside.pub")
    (fresh / "mlops.yaml").write_text(text)
    bad = run_mlops("keys", "init", cwd=fresh)
    assert bad.returncode != 0 and "signing.keys.team: ../../outside.pub" in bad.stderr
    assert not (fresh.parent.parent / "outside.pub").exists()
    text = text.replace("team: ../../outside.pub", "team: keys/team.pub").replace(
        "    # signers: [team, train]", "    signers: [nobody]"
    )
    (fresh / "mlops.yaml").write_text(text)
    invalid = run_mlops("validate", cwd=fresh)
    assert (
        invalid.returncode != 0
        and "signers" in invalid.stdout + invalid.stderr
        and "'nobody' is not a signer" in invalid.stdout + invalid.stderr
    )
