"""`mlops rollback` and `mlops resume`: return to what served before, break-glass, and its end."""

from __future__ import annotations

import sys

import click

from ..core import output
from ..core.errors import ExitCode
from . import options
from .app import main, repo


@main.command()
@click.argument("model")
@options.environment(required=True, help="Environment to roll back.")
@click.option(
    "--to-version", type=click.IntRange(min=1), help="Return to the newest routing whose primary was vN."
)
@click.option(
    "--to-record", help="Return to this deployment record's routing (its id, as `mlops history` shows)."
)
@click.option("--now", "now", is_flag=True, help="Also apply it at once and hold it (break-glass; recorded).")
@click.option("--direct", is_flag=True, help="Commit on the current branch instead of a rollback branch.")
@click.option(
    "--reason", default="rollback", show_default=True, help="Why; goes into the commit and the record."
)
@click.option("--no-pr", is_flag=True, help="Do not push or open a pull request.")
@options.output_format()
@click.pass_context
def rollback(
    ctx: click.Context,
    model: str,
    env: str,
    to_version: int | None,
    to_record: str | None,
    now: bool,
    direct: bool,
    reason: str,
    no_pr: bool,
    fmt: str,
) -> None:
    """Return MODEL in ENV to what served before: the whole routing (primary version, split,
    shadow, rollout settings) of the last deployment that served healthy before the one serving
    now, as `argocd app rollback` does; --to-version N or --to-record ID picks another point of
    its history (`mlops history`). Without this machine's deployment records, the points are
    what the default branch asked for, merge by merge.

    The change is a commit on a fresh branch rollback/<model>-<env>-v<N> made from the default
    branch (whatever other branches exist), as a pull request (or --direct on the current
    branch). --now also applies it at once, records a break-glass event and puts a hold on the
    deployment: every reconciler of ENV, on any machine, leaves it as it is until git asks for
    it (the pull request merged) or `mlops resume MODEL --env ENV`.
    """
    from ..deploy import rollback as rb
    from ..deploy.reconcile import apply_rollback_now

    loaded = repo(ctx, isolate=True)
    result = rb.propose_rollback(
        loaded,
        model,
        env,
        reason,
        direct=direct,
        open_pr=not no_pr,
        to_version=to_version,
        to_record=to_record,
    )
    applied = apply_rollback_now(loaded, result, reason) if now else None
    if fmt == "json":
        output.emit_json("Rollback", {**result, "applied": applied})
    else:
        verb = "rollback" if result["changed"] else "rollback (proposed already)"
        output.stdout.print(
            f"{verb}: {model} in {env}: {result['change']} ({result['commit'][:8]} on {result['branch']})",
            highlight=False,
        )
        output.stdout.print(f"pull request: {result['pull_request']}", highlight=False)
        if applied is not None:
            output.stdout.print(f"applied now (break-glass): {applied['counts']}", highlight=False)
            if applied.get("hold"):
                output.stdout.print(
                    f"hold: {applied['hold']}: every reconcile of {env} leaves {model} as it is until "
                    f"{result['branch']} is merged, or `mlops resume {model} --env {env}`",
                    highlight=False,
                )
    if applied is not None and not applied["ok"]:
        sys.exit(int(ExitCode.FAILED))


@main.command()
@click.argument("model")
@options.environment(required=True, help="Environment whose hold ends.")
@click.option("--reason", default="resumed", show_default=True, help="Why; goes into the record.")
@options.output_format()
@click.pass_context
def resume(ctx: click.Context, model: str, env: str, reason: str, fmt: str) -> None:
    """End the break-glass hold on MODEL in ENV (as `flux resume` or turning Argo CD's automated
    sync back on): the next reconcile applies what git asks for, even if that undoes the
    rollback. Recorded, with who and why. A hold also ends by itself once git asks for what runs.
    """
    from ..deploy.holds import Holds
    from ..registry.client import Registry

    loaded = repo(ctx, isolate=True)
    loaded.require_environment(env)
    if model not in loaded.models and not any(m == model for _, m in loaded.invalid):
        loaded.require_model(model)
    ended = Holds(loaded.root, Registry(loaded)).end(env, model, "resume", reason)
    if fmt == "json":
        output.emit_json(
            "Resume", {"model": model, "environment": env, "ended": ended.to_dict() if ended else None}
        )
    elif ended is None:
        output.stdout.print(f"{model} in {env}: no hold (nothing to resume)", highlight=False)
    else:
        output.stdout.print(
            f"resumed: {model} in {env} (hold by {ended.by} since {ended.at} ended); "
            f"the next `mlops reconcile --env {env}` applies what git asks for",
            highlight=False,
        )
