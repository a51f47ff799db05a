"""`mlops drift`, `mlops feedback`, `mlops alert`: what the deployed models see, and who is told."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..core import output
from ..core.errors import ExitCode, MlopsError
from . import options
from .app import main, repo


@main.command()
@click.argument("models", nargs=-1)
@options.environment(required=True, help="The environment whose inference log is judged.")
@click.option(
    "--since", default=None, help="Window: 24h, 7d, 30m or an RFC 3339 time (default: the whole log)."
)
@click.option(
    "--reference",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Reference data (CSV) instead of the serving version's training data.",
)
@options.out_dir("Where the HTML and JSON reports go (default: .mlops/drift/<env>/<model>/).")
@click.option(
    "--summary-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the markdown summary here (the drift issue's body).",
)
@click.option(
    "--drifted-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the names of the drifted models here, space-separated (what to retrain).",
)
@click.option("--no-record", is_flag=True, help="Do not record the status on the registered model.")
@options.output_format("table", "json", "markdown")
@click.pass_context
def drift(
    ctx: click.Context,
    models: tuple[str, ...],
    env: str,
    since: str | None,
    reference: Path | None,
    out_dir: Path | None,
    summary_file: Path | None,
    drifted_file: Path | None,
    no_record: bool,
    fmt: str,
) -> None:
    """Data drift of the logged inferences against the serving version's training data.

    MODELS default to every model with a version in --env. Per column, the test of
    models/<model>/model.yaml (drift:) chosen by type; evidently computes it. Writes an
    HTML and a JSON report named and headed by model, environment and version, prints one
    screen naming the drifted columns, and records the status on the registered model
    (what the promotion gate reads).

    Exit codes: 0 no drift, 1 drift, 2 error, 3 not enough data (for every model).
    """
    from ..monitor import drift as measuring
    from ..registry.client import Registry

    loaded = repo(ctx)
    with output.stderr.status(f"measuring drift in {env}"):
        results = measuring.measure(
            loaded, Registry(loaded), env, list(models), since, reference, out_dir, not no_record
        )
    markdown = measuring.to_markdown(results)
    for path, text in (
        (summary_file, markdown),
        (drifted_file, " ".join(r.model for r in results if r.status == measuring.STATUS_DRIFT)),
    ):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if fmt == "json":
        output.emit_json("DriftResult", {"results": [r.to_dict() for r in results]})
    elif fmt == "markdown":
        sys.stdout.write(markdown)
    else:
        for r in results:
            output.stdout.print(
                f"{r.model} v{r.version} in {r.environment}: {r.status}"
                + (f" ({r.severity}): {', '.join(r.drifted)}" if r.drifted else "")
                + (" (the model's answers moved)" if r.prediction and r.prediction.drifted else "")
                + f" - {r.rows} rows logged (min {r.min_rows}), {r.skipped_lines} corrupt line(s) skipped"
                + (f"; report {r.report_html}" if r.report_html else ""),
                highlight=False,
            )
            if r.columns:
                output.table(
                    f"{r.model} in {r.environment}",
                    ["column", "type", "method", "threshold", "score", "drifted"],
                    [
                        (
                            c.column,
                            c.kind,
                            c.method,
                            f"{c.threshold:g}",
                            "-" if c.score is None else f"{c.score:.4g}",
                            "DRIFT" if c.drifted else "ok",
                        )
                        for c in [
                            *sorted(r.columns, key=lambda c: (not c.drifted, c.column)),
                            *([r.prediction] if r.prediction else []),
                        ]
                    ],
                )
    statuses = {r.status for r in results}
    if measuring.STATUS_DRIFT in statuses:
        sys.exit(int(ExitCode.FAILED))
    if results and statuses == {measuring.STATUS_INSUFFICIENT}:
        sys.exit(int(ExitCode.NOT_ENOUGH_DATA))


@main.command()
@click.argument("model")
@options.environment(required=True, help="The environment whose predictions the labels belong to.")
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Ground truth: CSV request_id,label[,row] or JSON lines with those keys.",
)
@options.out_dir("Where the HTML and JSON reports go (default: .mlops/feedback/<env>/<model>/).")
@click.option("--no-record", is_flag=True, help="Do not record the status on the registered model.")
@options.output_format()
@click.pass_context
def feedback(
    ctx: click.Context,
    model: str,
    env: str,
    labels_file: Path,
    out_dir: Path | None,
    no_record: bool,
    fmt: str,
) -> None:
    """Join ground truth to logged predictions; live performance per version and per day.

    The metric and the tolerated drop come from models/<model>/model.yaml
    (drift.live_performance); the reference is each version's registered value.

    Exit codes: 0 within tolerance, 1 degraded, 2 error, 3 not enough labelled rows.
    """
    from ..monitor import feedback as joining
    from ..registry.client import Registry

    loaded = repo(ctx)
    registry = Registry(loaded)
    result = joining.run(loaded, registry, model, env, labels_file, out_dir)
    if not no_record:
        joining.record(loaded.root, registry, result)
    if fmt == "json":
        output.emit_json("FeedbackResult", result.to_dict())
    else:
        output.table(
            f"live {result.metric} of {model} in {env}",
            ["version", "labelled rows", "live", "registered", "drop", "verdict"],
            [
                (
                    f"v{v['version']}",
                    v["rows"],
                    v["live"],
                    v["registered"],
                    v["drop"],
                    "DEGRADED" if v["degraded"] else ("ok" if v["live"] is not None else "too few"),
                )
                for v in result.versions
            ],
        )
        output.stderr.print(
            f"{result.status}: {result.joined} labelled rows joined, {result.unmatched} label(s) without a "
            f"logged prediction, {result.skipped_lines} corrupt line(s) skipped; "
            f"tolerated drop {result.max_drop}"
            + (f"; report {result.report_html}" if result.report_html else ""),
            highlight=False,
        )
        target = result.target
        output.stderr.print(
            (
                f"labels against the training target: {'DRIFT' if target['drifted'] else 'no drift'} "
                f"({target['method']} {target['score']} vs threshold {target['threshold']}, "
                f"{target['rows']} labels)"
            )
            if target
            else f"labels against the training target: not judged ({result.target_note})",
            highlight=False,
        )
    if result.status == "degraded":
        sys.exit(int(ExitCode.FAILED))
    if result.status == "insufficient-data":
        sys.exit(int(ExitCode.NOT_ENOUGH_DATA))


@main.command()
@click.option("--name", required=True, help="Which alert (e.g. drift-production); one open issue per name.")
@click.option("--title", required=True, help="The issue's title.")
@options.body_file
@options.repository
@click.option("--dispatch", "workflow", default=None, help="Also start this workflow (e.g. train.yml).")
@click.option("--ref", default="main", show_default=True, help="Branch the dispatched workflow runs on.")
@click.option("--input", "inputs", multiple=True, help="KEY=VALUE input of the dispatched workflow.")
def alert(
    name: str,
    title: str,
    body_file: Any,
    repository: str,
    workflow: str | None,
    ref: str,
    inputs: tuple[str, ...],
) -> None:
    """Open (or update) one GitHub issue per alert name, and optionally dispatch a workflow.

    The drift workflow calls it on drift: one issue per environment, updated while it stays
    open, and the training workflow started. Without an authenticated `gh` (a laptop, act)
    it changes nothing and prints what it would do and the command that does it.
    """
    from ..core import github

    body = body_file.read()
    bad = [item for item in inputs if "=" not in item]
    if bad:
        raise MlopsError(f"--input {bad[0]!r}: expected KEY=VALUE")
    values = dict(item.split("=", 1) for item in inputs)
    if not github.ready():
        output.stdout.print(
            f"no authenticated gh: would open or update the issue {title!r} ({name}) on {repository}"
            + (f" and dispatch {workflow} on {ref} with {values}" if workflow else "")
            + "; next step: gh issue create --title "
            + repr(title)
            + " --body-file <file>"
            + (f" && gh workflow run {workflow} --ref {ref}" if workflow else ""),
            highlight=False,
            markup=False,
        )
        return
    client = github.GhCli()
    action, number = github.upsert_issue(client, repository, name, title, body)
    output.stderr.print(f"{action} issue {repository}#{number}", highlight=False)
    if workflow:
        github.dispatch(client, repository, workflow, ref, values)
        output.stderr.print(f"dispatched {workflow} on {ref}", highlight=False)
