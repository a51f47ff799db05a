"""`mlops webhook`, `mlops watch --registry`, `mlops registry`: the team's registry, and the
registry events that open promotions (deploy.events)."""

from __future__ import annotations

import os
import time

import click

from ..core import output
from ..core.errors import ExitCode, MlopsError
from . import options
from .app import main, repo

ROLE_VARS = {"trainer": "MLFLOW_TRAINER", "gate": "MLFLOW_GATE", "reconciler": "MLFLOW_RECONCILER"}


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8790, show_default=True, help="Port.")
@click.pass_context
def webhook(ctx: click.Context, host: str, port: int) -> None:
    """Receive MLflow's registry webhooks and open the promotions mlops.yaml asks for.

    Each delivery must carry MLflow's v1 signature made with MLOPS_WEBHOOK_SECRET (the secret
    given to MLflow's create_webhook; from the environment only), a timestamp within 5 minutes,
    and a delivery id not seen before. model_version.created and model_version_alias.created
    events are matched against registry.promotions in mlops.yaml; a match opens `mlops promote`'s
    pull request (a branch and its next step, without gh). GET /healthz counts what it did. Runs
    until stopped; `mlops watch --registry` finds what a missed delivery would have done.
    """
    from ..deploy.events import Receiver, rules_of, secret
    from ..registry.client import Registry

    key = secret()
    loaded = repo(ctx)
    if not rules_of(loaded):
        raise MlopsError("mlops.yaml: registry.promotions: none (expected at least one rule to act on)")
    try:
        server = Receiver((host, port), loaded, Registry(loaded), key)
    except OSError as exc:
        raise MlopsError(f"--port {port}: cannot listen on {host} ({exc.strerror})") from None
    output.stderr.print(
        f"receiving MLflow webhooks on http://{host}:{server.server_address[1]}/", highlight=False
    )
    options.serve(server)


@main.command()
@click.option(
    "--registry", "registry_events", is_flag=True, required=True, help="Poll the registry (required)."
)
@click.option("--once", is_flag=True, help="Poll once and exit (for cron or a CI schedule).")
@click.option(
    "--interval", type=click.IntRange(min=5), default=60, show_default=True, help="Seconds between polls."
)
@options.output_format("table", "json")
@click.pass_context
def watch(ctx: click.Context, registry_events: bool, once: bool, interval: int, fmt: str) -> None:
    """The webhook's backstop: find in the registry what registry.promotions would act on.

    For a model_version.created rule, the newest version of each model whose tags match; for an
    alias rule, the version the alias names. Each is proposed once for its environment, whether
    the webhook or the poll saw it first, and never when the environment already asks for it or
    a newer version. Exit code 0; 2 when the registry cannot be read.
    """
    from ..deploy.events import poll, rules_of, sync
    from ..registry.client import Registry

    loaded = repo(ctx)
    if not rules_of(loaded):
        raise MlopsError("mlops.yaml: registry.promotions: none (expected at least one rule to act on)")
    while True:
        loaded = sync(loaded.root)  # each round reads the repository as its remote has it now
        outcomes = poll(loaded, Registry(loaded))
        if fmt == "json":
            output.emit_json("watch", {"outcomes": [o.to_dict() for o in outcomes]})
        else:
            rows = [(o.model, o.version, o.environment, o.result, o.pull_request or "") for o in outcomes]
            output.table("registry events", ["model", "version", "to", "result", "pull request"], rows)
        if once:
            return
        time.sleep(interval)


@main.group()
def registry() -> None:
    """The registry this checkout uses: where it is, and what act's copy needs to reach it."""


@registry.command("act-args")
@click.option("--role", type=click.Choice(sorted(ROLE_VARS)), default="gate", show_default=True)
@click.pass_context
def act_args(ctx: click.Context, role: str) -> None:
    """The act options that give a workflow this checkout's registry (what `make act-pr` adds).

    act copies the working tree without the git-ignored sqlite file, so its jobs would find no
    registry. In order: `.actrc` naming MLFLOW_TRACKING_URI (nothing added); MLFLOW_TRACKING_URI
    in the environment, with MLFLOW_TRACKING_USERNAME as the role's user and the password passed
    as the role's secret (its value from MLFLOW_<ROLE>_PASSWORD, never on the command line); this
    checkout's own sqlite registry by its absolute path. None of them: one line saying what to
    set, exit code 2.
    """
    from ..registry.client import Registry, no_registry

    loaded = repo(ctx)
    actrc = loaded.root / ".actrc"
    if actrc.is_file() and "MLFLOW_TRACKING_URI" in actrc.read_text(encoding="utf-8", errors="replace"):
        return
    prefix = ROLE_VARS[role]
    words: list[str] = []
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        words += ["--var", f"MLFLOW_TRACKING_URI={uri}"]
        if os.environ.get("MLFLOW_TRACKING_USERNAME"):
            words += ["--var", f"{prefix}_USERNAME={os.environ['MLFLOW_TRACKING_USERNAME']}"]
            words += ["--secret", f"{prefix}_PASSWORD"]
    else:
        found = Registry(loaded)
        if found.missing():
            raise MlopsError(no_registry(found.uri), ExitCode.ERROR)
        words += ["--var", f"MLFLOW_TRACKING_URI={found.uri}"]
    click.echo(" ".join(words))


@main.command()
@click.option("--repository", default=None, help="OWNER/NAME on GitHub (default: the origin remote's).")
@click.option(
    "--offline", is_flag=True, help="Skip GitHub (its settings and runners): registry and storage only."
)
@options.output_format("table", "json")
@click.pass_context
def doctor(ctx: click.Context, repository: str | None, offline: bool, fmt: str) -> None:
    """What this repository's surroundings lack, each with its fix.

    GitHub (through gh, authenticated with a token that reads the repository's settings): the
    variables and secrets the workflows read, the environments and their reviewers, the default
    branch's protection (pr.yml's checks required, stale approvals dismissed, code owners'
    review) and CODEOWNERS, a runner online for each self-hosted label set of mlops.yaml. The
    registry: reachable with this machine's credentials, every model readable, and as its admin
    each role's permissions. The DVC remote and the kserve model store: a team's, reachable.
    Exit code 0 when nothing is missing, 1 otherwise (warnings alone: 0).
    """
    from ..core.github import GhCli
    from ..deploy import doctor as checks
    from ..registry.client import Registry

    loaded = repo(ctx)
    found: list[checks.Finding] = []
    if not offline:
        name = checks.repository_of(loaded.root, repository)
        try:
            github = GhCli()
            found += checks.check_settings(loaded, github, name) + checks.check_runners(loaded, github, name)
        except MlopsError as exc:
            found.append(
                checks.Finding("github", name, checks.MISSING, str(exc), "gh auth login, or GH_TOKEN")
            )
    found += checks.check_registry(loaded, Registry(loaded)) + checks.check_storage(loaded)
    found += checks.check_signing(loaded)
    if fmt == "json":
        output.emit_json("doctor", {"findings": [f.to_dict() for f in found]})
    else:
        rows = [(f.area, f.check, f.status, f.detail, f.fix) for f in found]
        output.table("mlops doctor", ["area", "check", "status", "detail", "fix"], rows)
    if any(f.status == checks.MISSING for f in found):
        raise SystemExit(int(ExitCode.FAILED))
