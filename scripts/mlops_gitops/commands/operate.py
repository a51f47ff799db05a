"""`mlops history` and `mlops compare`: what served when and why; how two live versions compare."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..core import output
from ..core.errors import ExitCode
from . import options
from .app import main, repo


@main.command()
@click.argument("model")
@options.environment(required=True, help="The environment whose history to tell.")
@click.option(
    "--at", "at_text", default=None, metavar="TIME",
    help="Only what served at this moment (ISO 8601, e.g. 2026-11-24T14:00:00Z; no zone is UTC).",
)  # fmt: skip
@options.output_format()
@click.pass_context
def history(ctx: click.Context, model: str, env: str, at_text: str | None, fmt: str) -> None:
    """What served MODEL in ENV, since when, and why: for each stretch, the version and its
    weights, the record that started it (who, which revision), the commit and pull request
    that asked for it, the gate's decision and the approvals it counted, the rollbacks and
    their causes, break-glass holds (placed, ended), and an analysed canary's verdicts. Each
    stretch starts with its record's id, which `mlops rollback --to-record ID` returns to.

    Read from the deployment records, git and the registry (without the registry, the rest
    still answers and the gap is named). Exit 1 when nothing served at --at.
    """
    from ..deploy.history import history as tell
    from ..deploy.history import parse_time, rows
    from ..registry.client import Registry

    loaded = repo(ctx, isolate=True)
    at = parse_time(at_text) if at_text else None
    document = tell(loaded, Registry(loaded), model, env, at)
    if fmt == "json":
        output.emit_json("History", document)
    else:
        output.table(
            f"history of {model} in {env}" + (f" at {document['at']}" if at else ""),
            ["record", "serving", "since", "until", "result", "by", "asked by", "gate", "rollbacks, holds"],
            rows(document),
        )
        for gap in document["gaps"]:
            output.warn(gap)
    if at is not None and not document["stretches"]:
        sys.exit(int(ExitCode.FAILED))


@main.command()
@click.argument("model")
@options.environment(required=True, help="The environment where the versions served side by side.")
@click.option(
    "--labels", "labels_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Ground truth (CSV request_id,label, as `mlops feedback` reads): compares the live metric.",
)  # fmt: skip
@click.option("--since", "since_text", default=None, metavar="TIME", help="Only requests from this time.")
@click.option(
    "--baseline",
    type=int,
    default=None,
    help="The baseline version (default: the stable one, else the one that answered first).",
)
@click.option(
    "--challenger", type=int, default=None, help="The challenger (default: the other busiest version)."
)
@click.option(
    "--record", is_flag=True, help="Keep the verdict on the challenger in the registry, for the gate."
)
@options.output_format()
@click.pass_context
def compare(
    ctx: click.Context, model: str, env: str, labels_file: Path | None, since_text: str | None,
    baseline: int | None, challenger: int | None, record: bool, fmt: str,
) -> None:  # fmt: skip
    """Compare the versions that served MODEL side by side in ENV (an A/B result): the live
    metric on labelled rows, the error rate, the median latency and the prediction
    distribution, each the challenger minus the baseline with a 95% interval (scipy and
    statsmodels), and a verdict: better, worse, or not enough data with the samples still
    needed. --record keeps it where the promotion gate reads it (input.version.compare).

    Exit codes: 0 better or no worse, 1 worse, 2 error, 3 not enough data.
    """
    from ..core import tasks
    from ..deploy.history import parse_time
    from ..monitor import compare as ab
    from ..monitor.feedback import label_rule, read_labels
    from ..registry.client import Registry

    loaded = repo(ctx)
    labels = None
    if labels_file:
        task = tasks.of(loaded.require_model(model))
        labels = read_labels(labels_file, label_rule(Registry(loaded), model, env, task))
    since = parse_time(since_text) if since_text else None
    result = ab.compare(loaded, model, env, labels, since, baseline, challenger)
    if record:
        ab.record(loaded, Registry(loaded), result)
    if fmt == "json":
        output.emit_json("Comparison", result)
    else:
        output.table(
            f"v{result['challenger']} against v{result['baseline']} in {env} "
            f"({result['requests']['challenger']} and {result['requests']['baseline']} requests)",
            ["measure", "difference", "95% interval", "verdict", "samples needed"],
            [
                (m["measure"], m.get("difference", "-"),
                 f"{m['ci_low']} to {m['ci_high']}" if "ci_low" in m else m.get("detail", "-"),
                 m["verdict"], m.get("samples_needed") or "-")
                for m in result["measures"]
            ],
        )  # fmt: skip
        output.stderr.print(f"verdict: v{result['challenger']} is {result['verdict']}", highlight=False)
    if result["verdict"] == ab.WORSE:
        sys.exit(int(ExitCode.FAILED))
    if result["verdict"] == ab.UNDECIDED:
        sys.exit(int(ExitCode.NOT_ENOUGH_DATA))
