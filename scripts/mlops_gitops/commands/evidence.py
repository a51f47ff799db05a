"""`mlops evidence [build]` and `mlops evidence verify`: the auditor's pack."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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
@click.option("--model", default=None, help="The model the pack must be of (with --env and --version).")
@click.option("--env", "env", default=None, help="The environment the pack must be of.")
@click.option("--version", "version", type=int, default=None, help="The version the pack must be of.")
@click.option(
    "--digest", default=None, help="The index sha256 the pack must have (printed when it was built)."
)
@click.option(
    "--no-anchor",
    is_flag=True,
    help="Check the files against index.json only, without the registry (the output says "
    '"not anchored": the index and its files may have been edited together).',
)
@click.option("--output", "fmt", type=click.Choice(output.OUTPUT_FORMATS), default="table", show_default=True)
@click.pass_context
def evidence_verify(
    ctx: click.Context,
    pack: Path,
    model: str | None,
    env: str | None,
    version: int | None,
    digest: str | None,
    no_anchor: bool,
    fmt: str,
) -> None:
    """Check an evidence pack: every file against its sha256 in index.json, nothing added or
    removed, every required file there, and the anchor: the registry's record of the index
    sha256 of every pack `mlops evidence` built. The pack's identity (model, environment,
    version) comes from --model/--env/--version, or from the registry record that holds its
    index's sha256, never from what the pack says of itself; a pack whose index names another
    fails. Without a readable anchor (outside the repository, the registry unreachable) it
    fails, unless --no-anchor. Exit 0 intact, 1 tampered, incomplete or not anchored (each
    named), 2 not a pack."""
    from .. import evidence
    from ..evidence.pack import index_of

    given = (model, env, version)
    if any(v is not None for v in given) and not all(v is not None for v in given):
        raise MlopsError("--model, --env and --version: give all three, or none (the anchor then names them)")
    _, index_sha = index_of(pack)
    anchored, recorded, why = (None, None, "--no-anchor") if no_anchor else _anchor(ctx, given, index_sha)
    verdict = evidence.verify(pack, digest, recorded, anchored)
    if why and not no_anchor:
        verdict.problems.insert(0, f"not anchored: {why}")
        verdict.ok = False
    _say_verified(pack, verdict, anchored, why, fmt)
    sys.exit(int(ExitCode.OK if verdict.ok else ExitCode.FAILED))


def _anchor(
    ctx: click.Context, given: tuple[str | None, str | None, int | None], index_sha: str
) -> tuple[tuple[str, str, int] | None, list[str] | None, str | None]:
    """(the identity, the digests the registry recorded for it, why there is no anchor)."""
    from ..evidence.build import anchored_by, recorded_digests
    from ..registry.client import Registry

    try:
        loaded = repo(ctx)
        registry = Registry(loaded)
        if all(v is not None for v in given):
            named = (str(given[0]), str(given[1]), int(given[2]))  # type: ignore[arg-type]
            return named, recorded_digests(registry, *named), None
        found = anchored_by(registry, sorted(loaded.models), index_sha)
    except MlopsError as exc:
        return None, None, f"{exc} (expected the repository's registry, or --no-anchor)"
    if found is None:
        return (
            None,
            None,
            (
                f"the registry holds no record of an index with sha256 {index_sha} (expected a pack built by "
                "`mlops evidence`; name its --model, --env and --version to see what was recorded for it)"
            ),
        )
    return found, recorded_digests(registry, *found), None


IDENTITY = ("model", "environment", "version")


def _say_verified(
    pack: Path, verdict: Any, anchored: tuple[str, str, int] | None, why: str | None, fmt: str
) -> None:
    if fmt == "json":
        output.emit_json(
            "EvidenceVerification",
            {
                "path": str(pack),
                "ok": verdict.ok,
                "problems": verdict.problems,
                "index_sha256": verdict.digest,
                "anchored": anchored is not None,
                "anchor": dict(zip(("model", "environment", "version"), anchored, strict=True))
                if anchored
                else None,
                "registry_checked": anchored is not None,
                "files": verdict.files,
                "gaps": verdict.gaps,
            },
        )
        return
    for problem in verdict.problems:
        output.error(escape(f"{pack}: {problem}"))
    if verdict.ok:
        where = (
            f"anchored: {anchored[0]} v{anchored[2]} in {anchored[1]}, as the registry recorded it"
            if anchored
            else f"not anchored ({why}): its index and files may have been edited together"
        )
        output.stdout.print(
            f"{pack}: intact, {verdict.files} files match index.json (sha256 {verdict.digest}); {where}"
            + (f"; {len(verdict.gaps)} gaps noted by its builder" if verdict.gaps else ""),
            highlight=False,
        )
