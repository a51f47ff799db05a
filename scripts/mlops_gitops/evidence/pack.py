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


def identity(path: Path) -> tuple[str, str, int] | None:
    """(model, environment, version) its index.json names; None when it names none."""
    try:
        with zipfile.ZipFile(path) as archive:
            document = json.loads(archive.read("index.json"))
        return str(document["model"]), str(document["environment"]), int(document["version"])
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return None


def verify(path: Path, digest: str | None = None, recorded: list[str] | None = None) -> Verdict:
    """Integrity (every file hashes to its index entry, nothing added or removed), completeness
    (every required file present) and, given the digests the registry recorded when packs of
    this version were built, that the index is one of them; raises MlopsError for what is not
    a pack."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise MlopsError(f"{path}: not an evidence pack ({exc})") from None
    with archive:
        names = archive.namelist()
        if "index.json" not in names:
            raise MlopsError(
                f"{path}: index.json missing (expected an evidence pack made by `mlops evidence`)"
            )
        raw = archive.read("index.json")
        try:
            document = json.loads(raw)
        except ValueError as exc:
            return Verdict(False, [f"index.json: not JSON ({exc})"], sha256(raw), 0, [])
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            return Verdict(False, [f"index.json: format is not {FORMAT}"], sha256(raw), 0, [])
        listed = {entry["path"]: entry for entry in document.get("files", [])}
        problems = (
            [f"index.json: sha256 {sha256(raw)} (expected {digest})"]
            if digest and sha256(raw) != digest
            else []
        )
        if recorded is not None and sha256(raw) not in recorded:
            problems.append(
                f"index.json: sha256 {sha256(raw)} is not one the registry recorded when packs of "
                f"{document.get('model')} v{document.get('version')} in {document.get('environment')} "
                f"were built ({', '.join(d[:12] + '…' for d in recorded) or 'none'}): altered, or not "
                "built by `mlops evidence`"
            )
        problems += _altered(archive, names, listed)
        problems += [f"{name}: required, not in the pack" for name in REQUIRED if name not in listed]
        if len(names) != len(set(names)):
            problems.append("the zip holds a file twice")
    return Verdict(not problems, problems, sha256(raw), len(listed), list(document.get("gaps", [])))


def _altered(archive: zipfile.ZipFile, names: list[str], listed: dict[str, Any]) -> list[str]:
    problems = []
    for name, entry in sorted(listed.items()):
        if name not in names:
            problems.append(f"{name}: missing from the pack (listed in index.json)")
            continue
        data = archive.read(name)
        if sha256(data) != entry.get("sha256"):
            problems.append(f"{name}: sha256 {sha256(data)} (expected {entry.get('sha256')}): altered")
    problems += [
        f"{name}: not listed in index.json: added"
        for name in sorted(set(names) - set(listed) - {"index.json"})
    ]
    return problems
