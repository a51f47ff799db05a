"""Who made a model: signed when registered, verified before it serves (OpenSSF model-signing).

A version's signature is one Sigstore bundle over every file of its model directory, made by
`model-signing` when `mlops register` registers it and kept with the version's run:

    mlops/signing/<model>-v<N>/model.sig        the bundle over the model's files
    mlops/signing/<model>-v<N>/provenance/       the in-toto statement (registry.attestation)
    mlops/signing/<model>-v<N>/provenance.sig    its bundle, signed the same way

The version's tags only point at them (core.tags, signing family): verification reads the
bundle, never a tag. Who may sign is mlops.yaml's trust policy:

    signing:
      keys: {team: keys/team.pub}       # a key pair's public half, in the repository
      identities:                         # keyless (Sigstore), such as the training workflow
        train: {identity: "https://github.com/ORG/REPO/.github/workflows/train.yml@refs/heads/main",
                issuer: "https://token.actions.githubusercontent.com"}
    environments:
      - name: production
        protected: true                  # a protected environment requires a signature
        signers: [team, train]            # who may sign what serves here (default: all above)

A signed version is verified wherever it goes; an unsigned one serves only in an environment
that is neither protected nor `require_signature: true` (a scratch environment).

Where registration finds its signer, first match wins: on GitHub Actions with an OIDC token
(`id-token: write`) and an identity in the policy, keyless with the workflow's identity (what
the policy does not list would verify nowhere); `MLOPS_SIGNING_KEY` (the PEM text of
a private key: a CI secret); a private key `mlops keys init` left in the state directory for a
key the policy lists. None: the version is registered unsigned, and says so.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from ..core import state
from ..core.config import Repo, outside
from ..core.errors import MlopsError

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
KEY_ENV = "MLOPS_SIGNING_KEY"
KEY_PASSWORD_ENV = "MLOPS_SIGNING_KEY_PASSWORD"
BUNDLE = "model.sig"


class Status(StrEnum):
    VERIFIED = "verified"  # a signature over exactly these files, by a signer allowed here
    UNSIGNED = "unsigned"
    MISSING = "missing"  # the version names a bundle that is not there
    ALTERED = "altered"  # the files differ from what was signed (changed, or another model's)
    UNTRUSTED = "untrusted"  # signed by someone the policy does not list
    NOT_ALLOWED = "not-allowed"  # a listed signer, but not one this environment takes
    INVALID = "invalid"  # not a bundle, or its signature does not check


@dataclass(frozen=True)
class Signer:
    """One entry of the trust policy: a key (by its public half) or a keyless identity."""

    name: str
    key: Path | None = None
    identity: str = ""
    issuer: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key.read_bytes()) if self.key is not None and self.key.is_file() else ""

    def describe(self) -> str:
        if self.key is not None and not self.key.is_file():
            return f"{self.name} (key {self.key.name}, not in the repository: `mlops keys init`, committed)"
        if self.key is not None:
            return f"{self.name} (key {self.fingerprint[:19]}…)"
        return f"{self.name} ({self.identity})"


@dataclass(frozen=True)
class Check:
    status: Status
    found: str = ""  # who the bundle says signed it: a key's fingerprint or a certificate identity
    signer: str = ""  # the policy's name for that signer, when it lists one
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == Status.VERIFIED

    def to_dict(self) -> dict[str, Any]:
        return {"status": str(self.status), "found": self.found, "signer": self.signer, "detail": self.detail}


def fingerprint(public_pem: bytes) -> str:
    """A public key's name: the sha256 of its PEM (SubjectPublicKeyInfo), as model-signing writes
    it into a bundle's `publicKey.hint`."""
    return "sha256:" + hashlib.sha256(public_pem).hexdigest()


# -- the trust policy --------------------------------------------------------------------------
def signers(repo: Repo) -> dict[str, Signer]:
    """Every signer mlops.yaml's `signing` lists, by name. A key file must be inside the
    repository (checked before it is opened); a missing one is one line naming it."""
    section = repo.project.get("signing") or {}
    found: dict[str, Signer] = {}
    for name, relative in sorted((section.get("keys") or {}).items()):
        path = repo.root / str(relative)
        if Path(str(relative)).is_absolute() or outside(repo.root, path):
            raise MlopsError(
                f"mlops.yaml: signing.keys.{name}: {relative} (expected a file inside the repository)"
            )
        found[name] = Signer(name, key=path)
    for name, entry in sorted((section.get("identities") or {}).items()):
        found[name] = Signer(
            name, identity=str(entry["identity"]), issuer=str(entry.get("issuer", GITHUB_ISSUER))
        )
    return found


def environment(repo: Repo, env: str) -> dict[str, Any]:
    return next(e for e in repo.project["environments"] if e["name"] == env)


def required(repo: Repo, env: str) -> bool:
    """Whether `env` serves signed versions only: a protected one always does."""
    settings = environment(repo, env)
    return bool(settings.get("protected") or settings.get("require_signature"))


def allowed(repo: Repo, env: str) -> list[Signer]:
    """The signers `env` takes: its `signers`, or every signer the policy lists."""
    every = signers(repo)
    names = environment(repo, env).get("signers")
    return [every[n] for n in names if n in every] if names else list(every.values())


def readable(signer: Signer) -> Signer:
    if signer.key is not None and not signer.key.is_file():
        raise MlopsError(
            f"mlops.yaml: signing.keys.{signer.name}: {signer.key.name} not found (expected the public "
            "key `mlops keys init` writes, committed)"
        )
    return signer


# -- signing -------------------------------------------------------------------------------------
def private_key_file(repo: Repo, name: str) -> Path:
    """Where `mlops keys init` keeps the private half of key `name` (the state directory, 0600)."""
    return state.state_dir(repo.root) / "keys" / f"{state.name('key', name)}.pem"


def keyless_here() -> bool:
    """GitHub Actions with an OIDC token to ask for (the job has `id-token: write`), not act."""
    return (
        os.environ.get("GITHUB_ACTIONS") == "true"
        and bool(os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL"))
        and not os.environ.get("ACT")
    )


@contextlib.contextmanager
def _key_from_environment(text: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "signing.pem"
        path.touch(mode=0o600)
        path.write_text(text if text.endswith("\n") else text + "\n")
        yield path


@contextlib.contextmanager
def signing_key(repo: Repo) -> Iterator[tuple[Path, str] | None]:
    """The private key registration signs with, and its fingerprint; None when there is none."""
    text = os.environ.get(KEY_ENV, "").strip()
    if text:
        if "PRIVATE KEY" not in text:
            raise MlopsError(f"{KEY_ENV}: not a PEM private key (expected the text `mlops keys init` wrote)")
        with _key_from_environment(text) as path:
            yield path, _public_fingerprint(path)
        return
    for signer in signers(repo).values():
        if signer.key is not None and private_key_file(repo, signer.name).is_file():
            path = private_key_file(repo, signer.name)
            yield path, _public_fingerprint(path)
            return
    yield None


def _public_fingerprint(private_pem: Path) -> str:
    from cryptography.hazmat.primitives import serialization

    password = os.environ.get(KEY_PASSWORD_ENV)
    try:
        key = serialization.load_pem_private_key(
            private_pem.read_bytes(), password.encode() if password else None
        )
    except (ValueError, TypeError) as exc:
        raise MlopsError(
            f"signing key: {exc} (expected an unencrypted EC P-256 key, or {KEY_PASSWORD_ENV})"
        ) from None
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return fingerprint(public)


def init_key(repo: Repo, name: str) -> dict[str, Any]:
    """A new EC P-256 key pair for `name`: the private half in the state directory (0600, never
    committed), the public half at mlops.yaml's `signing.keys.<name>` (keys/<name>.pub by default).
    Re-run: an existing pair is kept; a public half without its private half here is refused
    (the team's key lives in its secret store: MLOPS_SIGNING_KEY)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    state.name("key", name)
    listed = (repo.project.get("signing") or {}).get("keys") or {}
    relative = str(listed.get(name, f"keys/{name}.pub"))
    public = repo.root / relative
    if Path(relative).is_absolute() or outside(repo.root, public):
        raise MlopsError(
            f"mlops.yaml: signing.keys.{name}: {relative} (expected a file inside the repository)"
        )
    private = private_key_file(repo, name)
    row = {"key": name, "public": relative, "private": str(private), "listed": name in listed}
    if private.is_file() and public.is_file():
        if _public_fingerprint(private) != fingerprint(public.read_bytes()):
            raise MlopsError(
                f"{relative}: not the public half of {private} (expected the pair `mlops keys init` made)"
            )
        return {**row, "result": "unchanged", "fingerprint": fingerprint(public.read_bytes())}
    if public.is_file():
        raise MlopsError(
            f"{relative}: exists, but its private half is not on this machine (expected {KEY_ENV} set "
            "from the team's secret; to replace the key, remove the file first: versions it signed "
            "then verify nowhere)"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    private.touch(mode=0o600)
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public.parent.mkdir(parents=True, exist_ok=True)
    public.write_bytes(pem)
    return {**row, "result": "created", "fingerprint": fingerprint(pem)}


@dataclass(frozen=True)
class Signature:
    signer: str  # a key's fingerprint or the workflow's identity
    method: str  # key or sigstore


def sign(repo: Repo, directory: Path, bundle: Path) -> Signature | None:
    """Sign every file of `directory` into `bundle` with this machine's signer; None: no signer."""
    import model_signing

    config = model_signing.signing.Config()  # type: ignore[no-untyped-call]
    if keyless_here() and any(s.key is None for s in signers(repo).values()):
        config.use_sigstore_signer(use_ambient_credentials=True).sign(directory, bundle)
        return Signature(certificate_identity(bundle), "sigstore")
    with signing_key(repo) as key:
        if key is None:
            return None
        path, found = key
        password = os.environ.get(KEY_PASSWORD_ENV) or None
        config.use_elliptic_key_signer(private_key=path, password=password).sign(directory, bundle)
        return Signature(found, "key")


# -- verification --------------------------------------------------------------------------------
def bundle_signer(bundle: Path) -> tuple[str, str]:
    """(method, who) as the bundle states it: a key's fingerprint (model-signing's hint) or the
    certificate's identity. Read only to pick the policy entry to verify with."""
    material = json.loads(bundle.read_text())["verificationMaterial"]
    hint = (material.get("publicKey") or {}).get("hint")
    if hint:
        return "key", f"sha256:{hint}"
    return "sigstore", certificate_identity(bundle)


def certificate_identity(bundle: Path) -> str:
    """The subject alternative name of a keyless bundle's certificate (a workflow's identity)."""
    from cryptography import x509

    material = json.loads(bundle.read_text())["verificationMaterial"]
    raw = (material.get("certificate") or {}).get("rawBytes") or (
        (material.get("x509CertificateChain") or {}).get("certificates") or [{}]
    )[0].get("rawBytes")
    if not raw:
        return ""
    certificate = x509.load_der_x509_certificate(base64.b64decode(raw))
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    found = names.get_values_for_type(x509.UniformResourceIdentifier) or names.get_values_for_type(
        x509.RFC822Name
    )
    return str(found[0]) if found else ""


def verify(directory: Path, bundle: Path | None, trusted: list[Signer], listed: dict[str, Signer]) -> Check:
    """Whether `bundle` is a signature over exactly the files of `directory` by one of `trusted`
    (`listed`: every signer the policy names, to tell "not listed" from "not allowed here")."""
    if bundle is None:
        return Check(Status.UNSIGNED, detail="the version is unsigned")
    if not bundle.is_file():
        return Check(Status.MISSING, detail=f"its bundle {bundle.name} is not there")
    try:
        _, found = bundle_signer(bundle)
    except (ValueError, KeyError, TypeError) as exc:
        return Check(Status.INVALID, detail=f"{bundle.name} is not a Sigstore bundle ({exc})")
    matches = [s for s in listed.values() if found and identity_of(s) == found]
    if not matches:
        return Check(
            Status.UNTRUSTED,
            found,
            detail=f"signed by {found or 'an unnamed signer'}, whom mlops.yaml's signing does not list",
        )
    signer = matches[0]
    if signer.name not in {s.name for s in trusted}:
        return Check(
            Status.NOT_ALLOWED,
            found,
            signer.name,
            f"signed by {signer.describe()}, not one of this environment's signers",
        )
    return _check_files(directory, bundle, signer, found)


def identity_of(signer: Signer) -> str:
    """Whom `signer` stands for in a bundle: a key's fingerprint (when its file is here) or an
    identity; "" when neither can be known."""
    if signer.key is not None:
        return signer.fingerprint if signer.key.is_file() else ""
    return signer.identity


def _check_files(directory: Path, bundle: Path, signer: Signer, found: str) -> Check:
    import model_signing

    config = model_signing.verifying.Config()  # type: ignore[no-untyped-call]
    if signer.key is not None:
        config.use_elliptic_key_verifier(public_key=signer.key)
    else:
        config.use_sigstore_verifier(identity=signer.identity, oidc_issuer=signer.issuer)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # its warnings
            config.verify(directory, bundle)
    except ValueError as exc:
        text = str(exc).splitlines()[0]
        if text.startswith("Signature mismatch"):
            return Check(
                Status.ALTERED,
                found,
                signer.name,
                f"the files differ from what {signer.describe()} signed: {_short(text)}",
            )
        return Check(Status.INVALID, found, signer.name, f"the signature does not check: {_short(text)}")
    except Exception as exc:  # a bundle model-signing cannot parse, a certificate that fails
        return Check(Status.INVALID, found, signer.name, f"the signature does not check: {_short(str(exc))}")
    return Check(Status.VERIFIED, found, signer.name, f"signed by {signer.describe()}")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 240 else text[:237] + "..."


# -- the policy applied to a verified artifact ------------------------------------------------
class Verified(Protocol):
    """A model directory that hashed to its registered sha256 (registry.client.Verified)."""

    @property
    def path(self) -> Path: ...

    @property
    def signing(self) -> Path | None: ...


def bundle_of(verified: Verified) -> Path | None:
    return verified.signing / BUNDLE if verified.signing is not None else None


def check(repo: Repo, env: str, verified: Verified) -> Check:
    """What `env`'s trust policy says of a verified artifact (its files already match the sha256
    recorded at registration)."""
    return verify(verified.path, bundle_of(verified), allowed(repo, env), signers(repo))


def refusal(repo: Repo, env: str, model: str, version: int, result: Check) -> str | None:
    """The one line that keeps a version out of `env`; None when `env` takes it."""
    if result.ok or (result.status == Status.UNSIGNED and not required(repo, env)):
        return None
    expected = ", ".join(s.describe() for s in allowed(repo, env)) or "none listed: `mlops keys init`"
    return (
        f"{model} v{version}: refused by {env}'s trust policy ({result.status}): {result.detail} "
        f"(expected a signature by {expected})"
    )
