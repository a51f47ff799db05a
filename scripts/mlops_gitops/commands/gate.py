"""`mlops promote`, `mlops facts`, `mlops gate`, `mlops comment`: a promotion and the pull request's gate."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..core import output
from ..core.errors import ExitCode, MlopsError
from . import options
from .app import main, repo


@main.command()
@click.argument("model")
@click.option("--to", "env", required=True, help="Environment whose manifest changes.")
@click.option("--version", "version", type=int, default=None, help="Registered version to promote.")
@click.option("--from", "source", default=None, help="Promote the version another environment runs.")
@click.option("--reason", default="promotion", show_default=True, help="Why; goes into the commit and PR.")
@click.option("--no-pr", is_flag=True, help="Commit on the branch but do not push or open a pull request.")
@click.option(
    "--no-checkout",
    is_flag=True,
    help="Leave the working tree and the current branch as they are (the branch is made all the same).",
)
@click.option(
    "--canary",
    type=click.IntRange(1, 99),
    default=None,
    metavar="PERCENT",
    help="A fixed split: the version beside the stable one as its challenger, with PERCENT of the traffic.",
)
@click.option(
    "--rollout",
    is_flag=True,
    help="An analysed rollout to the version (the manifest's rollout settings, or 10/25/50% steps).",
)
@options.output_format()
@click.pass_context
def promote(
    ctx: click.Context,
    model: str,
    env: str,
    version: int | None,
    source: str | None,
    reason: str,
    no_pr: bool,
    no_checkout: bool,
    canary: int | None,
    rollout: bool,
    fmt: str,
) -> None:
    """Open the pull request that promotes a registered version of MODEL to an environment.

    Commits the edited environments/<env>/<MODEL>.yaml on the branch
    promote/<MODEL>-<env>-v<N>, made from the default branch (main) whatever other branches
    exist (a merged or stale one gets a fresh name), and switches to it (unless --no-checkout);
    it says where you are and how to get back. "Already promoted" means main asks for it.
    With `gh` installed and authenticated it pushes and opens the pull request; otherwise it prints the exact
    command. An unknown model, environment or version is refused and nothing changes.
    Policies judge the pull request (`mlops gate`, `make policy`).

    The manifest names roles: `version` is the stable one. --canary PERCENT keeps it and puts
    the version beside it as `canary: {version, percent}`, the challenger; --rollout promotes
    it by an analysed rollout (steps, interval, checks). A plain promotion makes it the stable
    one with the whole traffic (a canary or split goes).
    """
    if canary is not None and rollout:
        raise MlopsError("promote: --canary and --rollout are two ways to split (expected one of them)")
    from ..deploy import promote as promotion
    from ..registry.client import Registry

    loaded = repo(ctx, isolate=True)
    result = promotion.promote(
        loaded,
        Registry(loaded).has_version,
        model,
        env,
        version,
        source,
        reason,
        open_pr=not no_pr,
        checkout=not no_checkout,
        canary=canary,
        rollout=rollout,
    )
    if fmt == "json":
        output.emit_json("Promotion", result.to_dict())
    else:
        verb = "promoted" if result.changed else "already promoted"
        output.stdout.print(
            f"{verb}: {model} v{result.version} to {env} on branch {result.branch} ({result.commit[:8]})",
            highlight=False,
        )
        output.stdout.print(f"pull request: {result.pull_request}", highlight=False)
    where = (
        f"you are on {result.branch} now; back: git switch {result.base}"
        if result.checked_out
        else f"you are still on {result.base}; the promotion: git switch {result.branch}"
    )
    output.stderr.print(where, highlight=False)


@main.command()
@options.revisions
@options.event
@options.out_dir("Also write one <env>--<model>.json per change here.")
@click.pass_context
def facts(
    ctx: click.Context,
    base: str | None,
    head: str,
    now: str | None,
    event_file: Path | None,
    out_dir: Path | None,
) -> None:
    """The policy input for every manifest changed between --base and --head, as JSON.

    For each changed environments/<env>/<model>.yaml: the change, the manifest and its
    previous content, the model definition, the registry facts of the proposed version
    (metrics, lineage, artifact sha256, signature, report), history, drift and approvals
    (from the event payload or GitHub's API; "unknown" otherwise), and the time.
    """
    from ..gate import facts as gathering
    from ..gate.checks import event_of
    from ..registry.client import Registry

    loaded = repo(ctx)
    event = event_of(event_file)
    documents = gathering.build(
        loaded,
        Registry(loaded),
        base or gathering.default_base(loaded.root),
        head,
        gathering.now_rfc3339(now),
        event,
        gathering.gh_reviews(event),
        gathering.gh_members(),
    )
    if out_dir:
        gathering.write(documents, out_dir)
    sys.stdout.write(json.dumps(documents, indent=2, sort_keys=True) + "\n")


@main.command()
@options.revisions
@options.event
@click.option(
    "--record", is_flag=True, help="Keep each promotion's decision with its version in the registry."
)
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    default=90.0,
    show_default=True,
    help="The policies' tests must reach this share of their lines.",
)
@options.output_format("markdown", "json", default="markdown", help="markdown: the pull request's comment.")
@click.pass_context
def gate(
    ctx: click.Context,
    base: str | None,
    head: str,
    now: str | None,
    event_file: Path | None,
    record: bool,
    min_coverage: float,
    fmt: str,
) -> None:
    """The pull request's gate, whole (what `make policy` and pr.yml run): the policies' own
    tests with coverage, the manifests and workflows against the policies, the promotion gate
    over every manifest the branch changes (its facts kept in .mlops/facts/), and what a
    change to policies/ would deny among what runs now.

    Prints the pull request's comment (also written to .mlops/policy-gate.md when there is
    something to say). Exit 1 when a test fails, coverage is short, or a policy denies.
    """
    from ..gate import checks as gating
    from ..registry.client import Registry

    loaded = repo(ctx)
    with output.stderr.status("the gate: policy tests, manifests and workflows, promotions, impact"):
        result = gating.run(
            loaded, Registry(loaded), base, head, now, gating.event_of(event_file), record, min_coverage
        )
    if fmt == "json":
        output.emit_json("Gate", result.to_dict())
    elif result.comment:
        sys.stdout.write(result.comment + "\n")
    failed = ": " + ", ".join(result.failed_tests) if result.failed_tests else ""
    output.stderr.print(
        f"policy tests: {len(result.tests)}, {len(result.failed_tests)} failed{failed}; "
        f"coverage {result.coverage}% (at least {min_coverage}%)"
        + (f"; packages without tests: {', '.join(result.untested)}" if result.untested else ""),
        highlight=False,
    )
    for label, run in (("manifests and workflows", result.checked), ("promotions", result.promotions)):
        if run is not None:
            output.stderr.print(f"{label}: {run.summary()}", highlight=False)
    for line in result.notes + [f"decision recorded: {r}" for r in result.recorded]:
        output.stderr.print(line, highlight=False)
    sys.exit(int(ExitCode.OK if result.ok else ExitCode.FAILED))


@main.command()
@click.option(
    "--name", required=True, help="Which comment (e.g. policy-gate); one per name per pull request."
)
@options.body_file
@options.repository
@click.option("--pr", "number", type=int, default=None, help="Pull request number (default: from the event).")
@options.event
def comment(name: str, body_file: Any, repository: str, number: int | None, event_file: Path | None) -> None:
    """Post a pull-request comment, or update the one this command posted before under --name."""
    from ..core import github
    from ..gate.checks import event_of

    if number is None:
        number = ((event_of(event_file) or {}).get("pull_request") or {}).get("number")
    if number is None:
        raise MlopsError("comment: no pull request number (expected --pr N or a pull_request event)")
    action, comment_id = github.upsert_comment(
        github.GhCli(), repository, int(number), name, body_file.read()
    )
    output.stderr.print(f"{action} comment {comment_id} on {repository}#{number}", highlight=False)
