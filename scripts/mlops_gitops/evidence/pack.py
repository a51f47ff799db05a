"""The pack itself: its files, index.json, the deterministic zip, and verification."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import redact
from ..core.errors import MlopsError
from ..gate.decisions import canonical, sha256
from . import controls

FORMAT = "mlops-evidence/v1"
REQUIRED = (
    "lineage.json",
    "metrics.json",
    "policy/decisions.json",
    "approvals.json",
    "deployments.json",
    "monitoring/summary.json",
    "model-card.md",
    "summary.html",
    "supply-chain/signature.json",
    "supply-chain/ml-bom.cdx.json",
)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
TEXT_SUFFIXES = (".json", ".jsonl", ".html", ".md", ".txt", ".yaml", ".yml", ".csv", ".log")


@dataclass
class Pack:
    model: str
    environment: str
    version: int
    files: dict[str, bytes] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)  # the JSON files, as data
    gaps: list[str] = field(default_factory=list)  # evidence that should be here and is not
    findings: list[str] = field(default_factory=list)  # what went against policy

    def add(self, path: str, data: Any) -> None:
        """A file of the pack: bytes as they are (text redacted), anything else as canonical
        JSON (its strings redacted)."""
        if isinstance(data, bytes):
            self.files[path] = redact.redact_bytes(data) if path.endswith(TEXT_SUFFIXES) else data
        else:
            data = redact.redact_data(data)
            self.documents[path] = data
            self.files[path] = canonical(data)

    def controls(self) -> list[dict[str, Any]]:
        return controls.statuses(
            set(self.files), self.gaps, self.findings, self.documents["policy/decisions.json"]
        )


def index(pack: Pack) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": pack.model,
        "environment": pack.environment,
        "version": pack.version,
        "files": [
            {"path": path, "sha256": sha256(data), "bytes": len(data)}
            for path, data in sorted(pack.files.items())
        ],
        "required": list(REQUIRED),
        "controls": pack.controls(),
        "gaps": sorted(pack.gaps),
        "findings": pack.findings,
    }


def to_zip(pack: Pack) -> tuple[bytes, str]:
    """The pack as zip bytes (the same input, the same bytes) and the sha256 of its index."""
    document = canonical(index(pack))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path, data in [("index.json", document), *sorted(pack.files.items())]:
            info = zipfile.ZipInfo(path, date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue(), sha256(document)


def write(pack: Pack, out: Path) -> str:
    """Write the zip atomically (a killed run leaves no half pack); returns the index's sha256."""
    data, digest = to_zip(pack)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return digest


@dataclass
class Verdict:
    ok: bool
    problems: list[str]
    digest: str | None
    files: int
    gaps: list[str]


# What verification reads of a pack, decompressed: bounded, so a zip bomb (a small file that
# inflates to gigabytes) is refused within a few megabytes of memory. Every member is hashed as
# it streams; none is held whole.
MAX_INDEX = 8 << 20
MAX_MEMBER = 128 << 20
MAX_TOTAL = 512 << 20
_CHUNK = 1 << 20


class _TooLarge(Exception):
    pass


def _streamed(archive: zipfile.ZipFile, name: str, limit: int, keep: bool = False) -> tuple[str, bytes]:
    """(sha256, the bytes when `keep`) of one member, read in chunks; _TooLarge past `limit`
    (whatever size its header declares)."""
    import hashlib

    digest, kept, size = hashlib.sha256(), [], 0
    with archive.open(name) as member:
        while chunk := member.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise _TooLarge(f"{name}: over {limit} bytes decompressed (refused: a zip bomb?)")
            digest.update(chunk)
            if keep:
                kept.append(chunk)
    return digest.hexdigest(), b"".join(kept)


def index_of(path: Path) -> tuple[dict[str, Any], str]:
    """The pack's index.json (parsed) and its sha256; MlopsError for what is not a pack."""
    try:
        with zipfile.ZipFile(path) as archive:
            if "index.json" not in archive.namelist():
                raise MlopsError(
                    f"{path}: index.json missing (expected an evidence pack made by `mlops evidence`)"
                )
            digest, raw = _streamed(archive, "index.json", MAX_INDEX, keep=True)
    except (OSError, zipfile.BadZipFile, _TooLarge) as exc:
        raise MlopsError(f"{path}: not an evidence pack ({exc})") from None
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise MlopsError(f"{path}: index.json is not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise MlopsError(f"{path}: index.json's format is not {FORMAT} (expected an evidence pack)")
    return document, digest


def claimed(document: dict[str, Any]) -> tuple[str, str, int] | None:
    """(model, environment, version) an index names; None when it does not name all three."""
    try:
        return str(document["model"]), str(document["environment"]), int(document["version"])
    except (KeyError, ValueError, TypeError):
        return None


def verify(
    path: Path,
    digest: str | None = None,
    recorded: list[str] | None = None,
    anchored: tuple[str, str, int] | None = None,
) -> Verdict:
    """Integrity (every file hashes to its index entry, nothing added or removed), completeness
    (every required file present) and, given the anchor (`anchored`: the identity the caller or
    the registry gives, never the pack; `recorded`: the index digests the registry kept when
    packs of it were built), that the pack is that identity's and its index one of those; raises
    MlopsError for what is not a pack."""
    document, index_sha = index_of(path)
    listed = {entry["path"]: entry for entry in document.get("files", []) if isinstance(entry, dict)}
    problems = (
        [f"index.json: sha256 {index_sha} (expected {digest})"] if digest and index_sha != digest else []
    )
    if anchored is not None and claimed(document) != anchored:
        problems.append(
            f"index.json names {_named(claimed(document))} (expected {_named(anchored)}, the anchor's)"
        )
    if recorded is not None and index_sha not in recorded:
        problems.append(
            f"index.json: sha256 {index_sha} is not one the registry recorded when packs of "
            f"{_named(anchored)} were built ({', '.join(d[:12] + '…' for d in recorded) or 'none'}): "
            "altered, or not built by `mlops evidence`"
        )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        problems += _altered(archive, names, listed)
    problems += [f"{name}: required, not in the pack" for name in REQUIRED if name not in listed]
    if len(names) != len(set(names)):
        problems.append("the zip holds a file twice")
    return Verdict(not problems, problems, index_sha, len(listed), list(document.get("gaps", [])))


def _named(identity: tuple[str, str, int] | None) -> str:
    return (
        f"{identity[0]} v{identity[2]} in {identity[1]}" if identity else "no model, environment and version"
    )


def _altered(archive: zipfile.ZipFile, names: list[str], listed: dict[str, Any]) -> list[str]:
    problems, total = [], 0
    for name, entry in sorted(listed.items()):
        if name not in names:
            problems.append(f"{name}: missing from the pack (listed in index.json)")
            continue
        try:
            found, _ = _streamed(archive, name, min(MAX_MEMBER, MAX_TOTAL - total))
        except _TooLarge as exc:
            problems.append(str(exc))
            break
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # a corrupt member
            problems.append(f"{name}: unreadable ({exc})")
            continue
        total += archive.getinfo(name).file_size
        if found != entry.get("sha256"):
            problems.append(f"{name}: sha256 {found} (expected {entry.get('sha256')}): altered")
    problems += [
        f"{name}: not listed in index.json: added"
        for name in sorted(set(names) - set(listed) - {"index.json"})
    ]
    return problems
