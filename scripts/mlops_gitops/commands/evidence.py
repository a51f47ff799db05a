"""`mlops evidence [build]` and `mlops evidence verify`: the auditor's pack."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from ..core import output
from ..core.errors import ExitCode, MlopsError
from . import options
from .app import DefaultGroup, main, repo


@main.group("evidence", cls=DefaultGroup)
def evidence_group() -> None:
    """Evidence packs for auditors: `mlops evidence MODEL --env E -o pack.zip`, then
    `mlops evidence verify pack.zip`. (A model named build or verify: `mlops evidence build NAME`.)"""


@evidence_group.command("build")
@click.argument("model", required=False)
@options.environment(required=True, help="The environment whose deployment the pack proves.")
@click.option(
    "--version",
    "version",
    type=int,
    default=None,
    help="The version (default: the one @ENV points at, else the last one deployed there).",
)
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="A pack for every model whose manifest in ENV names a version (-o is then a directory).",
)
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=None,
    help="The zip to write (default: .mlops/evidence/ENV/MODEL-vN.zip); with --all, the directory.",
)
@click.option("--output", "fmt", type=click.Choice(output.OUTPUT_FORMATS), default="table", show_default=True)
@click.pass_context
def evidence_build(
    ctx: click.Context,
    model: str | None,
    env: str,
    version: int | None,
    every: bool,
    out: Path | None,
    fmt: str,
) -> None:
    """Write the evidence pack of MODEL's version in ENV: lineage, metrics and the champion/
    challenger report, every recorded policy decision with the policy files' hashes,
    approvals, deployment and rollback history, drift and feedback reports, the filled-in
    model card, an HTML summary grouped by control, and index.json with every file's sha256.

    The same inputs give the same bytes. Exit 0 when written, even with gaps or findings
    (listed in the pack and here); 2 on an error, with nothing written.
    """
    from .. import evidence
    from ..registry.client import Registry

    loaded = repo(ctx)
    with output.stderr.status(f"gathering the evidence in {env}"):
        written = evidence.write_packs(loaded, Registry(loaded), env, model, version, out, every)
    if fmt == "json":
        if every:
            output.emit_json("EvidencePacks", {"environment": env, "packs": written})
        else:
            output.emit_json("EvidencePack", written[0])
        return
    if not written:
        output.stdout.print(f"no model runs in {env}: no evidence pack", highlight=False)
    for pack in written:
        output.stdout.print(
            f"evidence pack: {pack['path']} ({pack['model']} v{pack['version']} in {env}, {pack['files']} "
            f"files, index sha256 {pack['index_sha256']})",
            highlight=False,
        )
        for gap in pack["gaps"]:
            output.stderr.print(f"gap: {escape(gap)}", highlight=False)
        for finding in pack["findings"]:
            output.stderr.print(f"[bold red]finding:[/] {escape(finding)}", highlight=False)


@evidence_group.command("verify")
@click.argument("pack", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--digest", default=None, help="The index sha256 the pack must have (printed when it was built)."
)
@click.option("--output", "fmt", type=click.Choice(output.OUTPUT_FORMATS), default="table", show_default=True)
@click.pass_context
def evidence_verify(ctx: click.Context, pack: Path, digest: str | None, fmt: str) -> None:
    """Check an evidence pack: every file against its sha256 in index.json, nothing added or
    removed, every required file there, and (inside the repository, its registry reachable)
    the index's own sha256 against those the registry recorded when packs of that version were
    built, so a file and index.json edited together are caught. Exit 0 intact, 1 tampered or
    incomplete (each file named), 2 not a pack."""
    from .. import evidence
    from ..evidence.build import recorded_digests
    from ..evidence.pack import identity
    from ..registry.client import Registry

    recorded: list[str] | None = None
    named = identity(pack)
    if named is not None:
        try:
            recorded = recorded_digests(Registry(repo(ctx)), named[0], named[1], named[2])
        except MlopsError as exc:
            output.warn(f"{pack}: not checked against the registry ({exc})")
    verdict = evidence.verify(pack, digest, recorded)
    if fmt == "json":
        output.emit_json(
            "EvidenceVerification",
            {
                "path": str(pack),
                "ok": verdict.ok,
                "problems": verdict.problems,
                "index_sha256": verdict.digest,
                "registry_checked": recorded is not None,
                "files": verdict.files,
                "gaps": verdict.gaps,
            },
        )
    else:
        for problem in verdict.problems:
            output.error(escape(f"{pack}: {problem}"))
        if verdict.ok:
            output.stdout.print(
                f"{pack}: intact, {verdict.files} files match index.json (sha256 {verdict.digest})"
                + (f"; {len(verdict.gaps)} gaps noted by its builder" if verdict.gaps else ""),
                highlight=False,
            )
    sys.exit(int(ExitCode.OK if verdict.ok else ExitCode.FAILED))
