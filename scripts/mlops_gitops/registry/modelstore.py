"""The model store: where the reconciler puts each verified artifact for KServe to fetch.

Content-addressed: a version's model directory lands under `<store>/sha256/<digest>/`, named by
the sha256 recorded at registration, so what is there is immutable (a path never changes
content) and checkable (it hashes to its own name). Publishing is idempotent: a digest already
there is downloaded and re-hashed, never trusted; a copy that does not hash to its name is
refused (VerifyFailed) and nothing points at it. A signed version's bundle (model-signing's
Sigstore bundle over the model's files) is written beside it, as
`<store>/signatures/sha256/<digest>.sig`: outside the model's directory (which still hashes to
its name) and outside its key prefix (which KServe's storage initializer downloads whole).

    deploy.kserve.model_store   s3://bucket/prefix   S3 (AWS_ENDPOINT_URL for S3-compatible ones)
                                gs://bucket/prefix   Google Cloud Storage, through its
                                                     S3-compatible endpoint (HMAC keys)
                                pvc://claim/prefix   a PersistentVolumeClaim, written through
                                                     deploy.kserve.model_store_mount (where the
                                                     claim is mounted on the reconciler's machine)
                                a directory          small setups: KServe reads file:// from the
                                                     node (hostPath, a shared mount)

The URIs are what KServe's storage initializer fetches (`kserve-storage`): s3://, gs://,
pvc:// and file:// are all its schemes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from ..core.errors import MlopsError
from .client import Verified, VerifyFailed
from .lineage import sha256_tree
from .signing import BUNDLE

GCS_INTEROP = "https://storage.googleapis.com"


class Store(Protocol):
    def uri(self, digest: str) -> str: ...
    def put(self, source: Path, digest: str) -> None: ...
    def fetch(self, digest: str, dest: Path) -> bool: ...  # False when the digest is not there
    def put_signature(self, source: Path, digest: str) -> str: ...  # its URI
    def signature_uri(self, digest: str) -> str: ...


def _key(prefix: str, digest: str) -> str:
    return "/".join(p for p in (prefix.strip("/"), "sha256", digest) if p)


def _signature_key(prefix: str, digest: str) -> str:
    """Where a model's bundle lies: in a tree of its own, never under the model's key, which
    KServe's storage initializer fetches as a prefix (a `<digest>.sig` beside `<digest>/` would
    land in the pod's model directory as a file `.sig`)."""
    return "/".join(p for p in (prefix.strip("/"), "signatures", "sha256", f"{digest}.sig") if p)


@dataclass
class DirectoryStore:
    """A directory on this machine (its URI file://, or pvc:// when it is a claim's mount)."""

    base: Path
    shown: str  # the URI prefix KServe sees

    def uri(self, digest: str) -> str:
        return f"{self.shown.rstrip('/')}/sha256/{digest}"

    def put(self, source: Path, digest: str) -> None:
        target = self.base / "sha256" / digest
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            copy = Path(tmp) / "model"
            shutil.copytree(source, copy)
            try:
                copy.rename(target)
            except OSError:  # another reconciler published it first: it is checked like any other
                if not target.is_dir():
                    raise

    def signature_uri(self, digest: str) -> str:
        return f"{self.shown.rstrip('/')}/{_signature_key('', digest)}"

    def put_signature(self, source: Path, digest: str) -> str:
        target = self.base / _signature_key("", digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
            tmp.write(source.read_bytes())
        Path(tmp.name).replace(target)
        return self.signature_uri(digest)

    def fetch(self, digest: str, dest: Path) -> bool:
        found = self.base / "sha256" / digest
        if not found.is_dir():
            return False
        shutil.copytree(found, dest)
        return True


@dataclass
class BucketStore:
    """An S3 bucket (or GCS through its S3-compatible endpoint), through boto3."""

    scheme: str
    bucket: str
    prefix: str
    endpoint: str | None

    def _client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint) if self.endpoint else boto3.client("s3")

    def uri(self, digest: str) -> str:
        return f"{self.scheme}://{self.bucket}/{_key(self.prefix, digest)}"

    def put(self, source: Path, digest: str) -> None:
        client = self._client()
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            key = f"{_key(self.prefix, digest)}/{path.relative_to(source).as_posix()}"
            client.upload_file(str(path), self.bucket, key)

    def signature_uri(self, digest: str) -> str:
        return f"{self.scheme}://{self.bucket}/{_signature_key(self.prefix, digest)}"

    def put_signature(self, source: Path, digest: str) -> str:
        self._client().upload_file(str(source), self.bucket, _signature_key(self.prefix, digest))
        return self.signature_uri(digest)

    def fetch(self, digest: str, dest: Path) -> bool:
        client = self._client()
        base = _key(self.prefix, digest) + "/"
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            keys += [item["Key"] for item in page.get("Contents", [])]
        for key in keys:
            target = dest / key[len(base) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(self.bucket, key, str(target))
        return bool(keys)


def for_settings(root: Path, settings: dict[str, Any]) -> Store:
    """The store deploy.kserve.model_store names (one line naming the field when it cannot)."""
    where = str(settings.get("model_store") or "")
    if not where:
        raise MlopsError(
            "mlops.yaml: deploy.kserve.model_store: missing (expected s3://bucket/prefix, "
            "gs://bucket/prefix, pvc://claim/prefix or a directory KServe's storage initializer can read)"
        )
    parsed = urlparse(where)
    if parsed.scheme == "s3":
        return BucketStore("s3", parsed.netloc, parsed.path, os.environ.get("AWS_ENDPOINT_URL") or None)
    if parsed.scheme == "gs":
        return BucketStore(
            "gs", parsed.netloc, parsed.path, os.environ.get("MLOPS_GS_ENDPOINT_URL") or GCS_INTEROP
        )
    if parsed.scheme == "pvc":
        mount = settings.get("model_store_mount")
        if not mount:
            raise MlopsError(
                "mlops.yaml: deploy.kserve.model_store_mount: missing (expected where the claim "
                f"{parsed.netloc} is mounted on this machine, for a pvc:// model store)"
            )
        return DirectoryStore((root / str(mount)).resolve() / parsed.path.strip("/"), where)
    if parsed.scheme in ("", "file"):
        base = Path(parsed.path if parsed.scheme == "file" else where)
        base = base if base.is_absolute() else (root / base).resolve()
        return DirectoryStore(base, base.as_uri())
    raise MlopsError(
        f"mlops.yaml: deploy.kserve.model_store: scheme {parsed.scheme}:// "
        "(expected s3, gs, pvc or a directory)"
    )


def publish(store: Store, verified: Verified) -> str:
    """The store's URI of `verified`'s model directory, put there unless its digest already is;
    either way fetched back and re-hashed against the digest (VerifyFailed when it differs)."""
    digest = verified.sha256
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "model"
        if not store.fetch(digest, copy):
            store.put(verified.path, digest)
            if not store.fetch(digest, copy):
                raise VerifyFailed(
                    f"{store.uri(digest)}: not found after publishing (expected the model directory)"
                )
        actual = sha256_tree(copy)
    if actual != digest:
        raise VerifyFailed(
            f"{store.uri(digest)}: hashes to {actual[:12]}…, not {digest[:12]}… "
            "(expected the store's copy unaltered; content-addressed paths never change)"
        )
    bundle = verified.signing / BUNDLE if verified.signing is not None else None
    if bundle is not None and bundle.is_file():  # beside the model: what an in-cluster verifier reads
        store.put_signature(bundle, digest)
    return store.uri(digest)
