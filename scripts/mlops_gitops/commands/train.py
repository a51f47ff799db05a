"""`mlops register` and `mlops report`: what the pipeline trained, into the registry, judged."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..core import output
from ..core.config import Repo
from ..core.errors import ExitCode
from . import options
from .app import main, repo


@main.command()
@click.argument("models", nargs=-1)
@click.option(
    "--report/--no-report",
    "with_report",
    default=False,
    help="Also write each version's champion/challenger report (exit 1 if one fails).",
)
@click.option("--baseline", default="production", show_default=True, help="Baseline for --report.")
@click.option(
    "--promote-to",
    "promote_to",
    default=None,
    help="After a passing report, open the promotion pull request to this environment.",
)
@options.output_format()
@click.pass_context
def register(
    ctx: click.Context,
    models: tuple[str, ...],
    with_report: bool,
    baseline: str,
    promote_to: str | None,
    fmt: str,
) -> None:
    """Log the pipeline's trained MODELS to MLflow and register a version of each.

    Each version carries its lineage as `mlops.*` tags: git commit and dirty flag, branch,
    dvc.lock and data hashes, params, metrics, runner, device, Python and package versions,
    and the sha256 of the model artifact. Each new version is signed (OpenSSF model-signing)
    with its SLSA provenance: keyless on GitHub Actions, else with MLOPS_SIGNING_KEY or the
    key `mlops keys init` made. Registering the same pipeline output again returns the
    existing version (signing it, if it is not yet). Without MODELS: every model the pipeline has trained.
    The registry is mlops.yaml's tracking_uri unless MLFLOW_TRACKING_URI is set.
    With --report, the report of each version against --baseline is written to
    reports/<model>/v<N>/ (and to the job summary on GitHub Actions); with --promote-to,
    a new version whose report passed gets its promotion pull request (`mlops promote`).
    """
    from ..registry import registration
    from ..registry.client import Registry

    loaded = repo(ctx)
    registry = Registry(loaded)
    wanted = list(models) or registration.trained_models(loaded)
    from ..registry.lineage import uncommitted

    for name in wanted:  # said before anything is registered
        files = uncommitted(loaded.root, name)
        if files:
            output.stderr.print(
                f"warning: {name} is registered from uncommitted work ({', '.join(files)}): its "
                "lineage's commit does not reproduce it, and protected environments deny it (expected "
                "`git add` + `git commit` of them, then `mlops register` again for a clean lineage)",
                highlight=False,
            )
    with output.stderr.status(f"registering {', '.join(wanted)} in {registry.uri}"):
        rows = registration.register(
            loaded, registry, wanted, with_report, baseline, _proposer(loaded, registry, promote_to, baseline)
        )
    if fmt == "json":
        output.emit_json(
            "RegisterResult", {"registry": registry.uri, "versions": [r.to_dict() for r in rows]}
        )
    else:
        output.table(
            f"registry {registry.uri}",
            ["model", "version", "result", "artifact sha256", "signed by", "report"],
            [
                (
                    r.model,
                    r.version,
                    r.to_dict()["result"],
                    r.artifact_sha256[:16],
                    (r.signature["signer"][:40] if r.signature else "unsigned"),
                    ("passed" if r.report["passed"] else "FAILED") if r.report else "-",
                )
                for r in rows
            ],
        )
    for r in rows:
        for warning in dict.fromkeys(r.warnings):
            output.stderr.print(f"warning: {warning}", highlight=False)
        if r.promotion:
            output.stderr.print(
                f"promotion of {r.model} v{r.version}: branch {r.promotion['branch']}; "
                f"pull request: {r.promotion['pull_request']}",
                highlight=False,
            )
    failed = [f"{r.model} v{r.version}" for r in rows if r.report and not r.report["passed"]]
    if failed:
        output.error(f"champion/challenger report failed for {', '.join(failed)} (see reports/)")
        sys.exit(int(ExitCode.FAILED))


@main.command()
@click.argument("model")
@click.option("--candidate", required=True, help="Candidate version number (or alias).")
@click.option(
    "--baseline",
    default=None,
    help="production, staging, any alias, or a version number. Without it: thresholds alone.",
)
@options.out_dir("Directory for report.md, report.json and the PNG plots (default: reports/<model>/v<N>).")
@options.output_format("markdown", "json", default="markdown", help="What to print on stdout.")
@click.pass_context
def report(
    ctx: click.Context, model: str, candidate: str, baseline: str | None, out_dir: Path | None, fmt: str
) -> None:
    """Champion/challenger report of a candidate version against a baseline.

    Both versions are scored on the same evaluation data (the pipeline's test split);
    the candidate must meet every threshold in models/<MODEL>/model.yaml and, against a
    baseline, not regress on the primary metric beyond max_regression. Prints markdown
    fit for a pull-request comment; exits 1 when the candidate fails.
    """
    from ..registry import report as reporting
    from ..registry.client import Registry

    loaded = repo(ctx)
    with output.stderr.status(f"scoring {model} v{candidate} and its baseline"):
        result, text, target = reporting.write(loaded, Registry(loaded), model, candidate, baseline, out_dir)
    if fmt == "json":
        output.emit_json("ChampionChallengerReport", {**result.to_json(), "directory": str(target)})
    else:
        sys.stdout.write(text)
        output.stderr.print(f"report: {target / 'report.md'}", highlight=False)
    if not result.passed:
        sys.exit(int(ExitCode.FAILED))


def _proposer(
    loaded: Repo, registry: Any, env: str | None, baseline: str
) -> Callable[[str, int], dict[str, Any]] | None:
    """--promote-to ENV: each new version whose report passed proposed for ENV, from the current
    branch on a branch of its own (the working tree stays where it is)."""
    if env is None:
        return None

    def propose(model: str, version: int) -> dict[str, Any]:
        from ..deploy.promote import promote

        reason = f"trained and registered; report passed against {baseline}"
        made = promote(loaded, registry.has_version, model, env, version, None, reason, checkout=False)
        return {"branch": made.branch, "pull_request": made.pull_request}

    return propose
