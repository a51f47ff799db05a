"""`mlops plan`, `reconcile`, `status`, `down`: what runs where."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from ..core import output
from ..core.errors import ExitCode, MlopsError
from . import options
from .app import main, repo, root


def _plan_table(changes: Any, fmt: str, title: str) -> None:
    from ..deploy.reconcile import plan_document

    if fmt == "json":
        output.emit_json("Plan", plan_document(changes))
        return
    columns = ["environment", "model", "action", "sync", "health", "live", "desired", "detail"]
    output.table(
        title,
        ["env", "model", "action", "sync", "health", "live", "desired", "detail"],
        [tuple(c.row()[k] for k in columns) for c in changes],
    )


@main.command()
@options.environment()
@options.target
@options.output_format()
@click.pass_context
def plan(ctx: click.Context, env: str | None, target_kind: str | None, fmt: str) -> None:
    """Show what `mlops reconcile` would do: desired state (the manifests at HEAD) against
    live state (registry aliases and what the target runs).

    Each deployment is create, update, unchanged, remove or suspended, with its sync status
    (Synced / OutOfSync) and health (healthy / progressing / degraded / missing) kept apart,
    as in Argo CD. Exit codes as `argocd app diff` and `flux diff`: 0 nothing would change,
    1 something would, 2 error.
    """
    from ..core.health import Sync
    from ..deploy.reconcile import reconciler_for

    changes = reconciler_for(repo(ctx, isolate=True), target_kind).plan(env)
    _plan_table(changes, fmt, "plan")
    sys.exit(0 if all(c.sync == Sync.SYNCED for c in changes) else 1)


def _reconcile_once(
    where: Path,
    target_kind: str | None,
    env: str | None,
    dry_run: bool,
    prune: bool,
    allow_empty: bool,
    fmt: str,
) -> bool:
    from ..core.config import load_repo
    from ..deploy import reconcile as rec

    with output.stderr.status("reconciling") as shown:
        reconciler, changes, outcomes = rec.run_once(
            load_repo(where, isolate=True),
            target_kind,
            env,
            dry_run,
            prune,
            allow_empty,
            lambda change: shown.update(f"{change.environment}/{change.model}: {change.action}"),
        )
    if dry_run:
        _plan_table(changes, fmt, "plan (dry run)")
        return True
    if fmt == "json":
        output.emit_json("ReconcileResult", {"revision": reconciler.revision, **rec.summary(outcomes)})
    else:
        output.table(
            f"reconcile at {reconciler.revision[:8]}",
            ["env", "model", "action", "result", "version", "detail"],
            [
                (
                    o.change.environment,
                    o.change.model,
                    o.change.action,
                    o.result,
                    f"v{o.version}" if o.version else "-",
                    o.message or o.change.detail,
                )
                for o in outcomes
            ],
        )
        for o in outcomes:
            if not o.ok:
                output.error(escape(f"{o.change.environment}/{o.change.model}: {o.reason}: {o.message}"))
    return all(o.ok for o in outcomes)


@main.command()
@options.environment(help="Only this environment (default: all, each locked).")
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option(
    "--prune", is_flag=True, help="Stop deployments whose manifest is gone or whose version is null."
)
@click.option(
    "--allow-empty", is_flag=True, help="With --prune: allow stopping everything an environment runs."
)
@click.option("--watch", is_flag=True, help="Keep going: pull the git remote and reconcile on change.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds between pulls with --watch.",
)
@click.option(
    "--max-backoff",
    type=click.FloatRange(min=0.1),
    default=300.0,
    show_default=True,
    help="Longest wait after failures with --watch.",
)
@click.option("--iterations", type=int, default=0, hidden=True, help="Stop --watch after N rounds (tests).")
@click.option(
    "--health-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="With --watch: answer GET /healthz and /metrics (Prometheus) on this port (0: any free one).",
)
@click.option(
    "--health-host", default="127.0.0.1", show_default=True, help="Address the health endpoint listens on."
)
@options.target
@options.output_format()
@click.pass_context
def reconcile(
    ctx: click.Context,
    env: str | None,
    dry_run: bool,
    prune: bool,
    allow_empty: bool,
    watch: bool,
    interval: float,
    max_backoff: float,
    iterations: int,
    health_port: int | None,
    health_host: str,
    target_kind: str | None,
    fmt: str,
) -> None:
    """Make the live state what the manifests say: verify each version's artifact sha256,
    deploy it beside the old one, wait for health (readiness and a smoke prediction on the
    model's input example), then move the registry alias @<env>. When health fails it rolls
    back to the version that served before, by itself, and exits 1 naming model,
    environment, version and cause. Every apply writes a deployment record.

    Idempotent (a second run changes nothing), one reconciler per environment at a time,
    crash-safe (killed at any point, the next run converges). --watch pulls the remote and
    reconciles on change, retrying failures with exponential backoff, always against the
    newest revision. Exit codes: 0 in sync and healthy, 1 a deployment failed, 2 error.
    """
    from ..deploy import reconcile as rec

    where = root(ctx)

    def once() -> bool:
        return _reconcile_once(where, target_kind, env, dry_run, prune, allow_empty, fmt)

    if health_port is not None and not watch:
        raise MlopsError("--health-port: only with --watch (expected a reconciler that keeps running)")
    if not watch:
        ok = once()
    else:

        def say(line: str) -> None:
            output.stderr.print(escape(line), highlight=False)

        probe = None
        if health_port is not None:
            from ..deploy import probe as probes

            probe = probes.Probe(stale_after=3 * max(interval, max_backoff) + 600)
            try:
                server = probes.serve(health_host, health_port, probe)
            except OSError as exc:
                raise MlopsError(f"--health-port {health_port}: cannot listen ({exc.strerror})") from None
            say(f"health and metrics on http://{health_host}:{server.server_address[1]}/healthz, /metrics")
        ok = rec.watch(
            where,
            once,
            interval,
            max_backoff,
            iterations,
            say=say,
            on_round=probe.round if probe else None,
        )
    sys.exit(0 if ok else int(ExitCode.FAILED))


@main.command()
@click.argument("model", required=False)
@options.environment(help="Only this environment.")
@click.option(
    "--url", "only_url", is_flag=True, help="Print only the URL (one MODEL in one --env), for scripts."
)
@options.target
@options.output_format()
@click.pass_context
def status(
    ctx: click.Context, model: str | None, env: str | None, only_url: bool, target_kind: str | None, fmt: str
) -> None:
    """Which version runs where, its health, since when, at which URL (MODEL: only that model).

    `curl "$(mlops status MODEL --env staging --url)/predict" ...` calls a deployment.
    """
    from ..core.health import Health
    from ..deploy.reconcile import STATUS_COLUMNS
    from ..deploy.reconcile import status as rows_of

    loaded = repo(ctx, isolate=True)
    if model is not None and not any(m == model for _, m in loaded.invalid):
        loaded.require_model(model)
    if only_url and (model is None or env is None):
        raise MlopsError(
            "status --url: name one MODEL and one --env (expected `mlops status MODEL --env E --url`)"
        )
    rows = rows_of(loaded, env, model, target_kind)
    if only_url:
        if not rows or not rows[0]["url"] or rows[0]["health"] == Health.MISSING:
            raise MlopsError(f"{model} in {env}: not running (expected `mlops reconcile --env {env}` first)")
        output.stdout.print(rows[0]["url"], highlight=False)
    elif fmt == "json":
        output.emit_json("Status", {"deployments": rows})
    else:
        output.table(
            "status", list(STATUS_COLUMNS.values()), [tuple(r[k] for k in STATUS_COLUMNS) for r in rows]
        )


@main.command()
@options.environment()
@click.pass_context
def down(ctx: click.Context, env: str | None) -> None:
    """Stop the model servers the local target runs, cleanly (SIGTERM; in-flight requests finish).

    Registry aliases and manifests are left as they are: the next `mlops reconcile` starts
    them again.
    """
    from ..deploy.targets.local import LocalTarget

    # Needs no valid configuration: the state files name every server, and stopping must work
    # even while a broken commit is checked out.
    stopped = LocalTarget(root(ctx), {}).stop_all(env)
    output.stdout.print(f"stopped: {', '.join(stopped) or 'nothing was running'}", highlight=False)
