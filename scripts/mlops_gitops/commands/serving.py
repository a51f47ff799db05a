"""`mlops predict` and `mlops serve`: a deployment asked as its clients ask it, one version served."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..core import output
from . import options
from .app import main, repo


@main.command()
@click.argument("model")
@options.environment(required=True, help="The environment whose deployment answers.")
@click.option(
    "--input",
    "input_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Rows to send: CSV, JSON lines (.jsonl) or a JSON list (.json).",
)
@click.option(
    "--example",
    is_flag=True,
    help="Send nothing: print a valid request body for the version ENV serves (a row of its input "
    "example), for curl -d @-.",
)
@click.option(
    "--protocol",
    type=click.Choice(["mlflow", "v2"]),
    default="mlflow",
    show_default=True,
    help="With --example: MLflow's dataframe_records (/predict, /invocations) or v2 tensors (/v2/.../infer).",
)
@click.option("--batch-size", type=int, default=50, show_default=True, help="Rows per request.")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write request_id,row,version,prediction per row here (CSV).",
)
@click.option(
    "--labels-out",
    "labels_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="When the rows hold the model's target column: request_id,row,label here, for `mlops feedback`.",
)
@options.output_format()
@click.pass_context
def predict(
    ctx: click.Context,
    model: str,
    env: str,
    input_file: Path | None,
    example: bool,
    protocol: str,
    batch_size: int,
    out_file: Path | None,
    labels_file: Path | None,
    fmt: str,
) -> None:
    """Send rows to MODEL's deployment in ENV, in batches, as a client would.

    Each batch is one /predict request with its own request id, logged by the server like
    any client's: enough rows (models/MODEL/model.yaml drift.min_rows, 200 by default) give
    `mlops drift` a verdict, and --labels-out gives `mlops feedback` its ground truth.
    Exit 1 when a request failed. With --example, sends nothing and prints a request body.
    """
    import json

    from ..monitor import traffic

    loaded = repo(ctx)
    if example == (input_file is not None):
        raise click.UsageError("give --input FILE to send rows, or --example to print a request")
    if example:
        click.echo(json.dumps(traffic.example(loaded, model, env, protocol)))
        return
    assert input_file is not None
    rows = traffic.read_rows(input_file)
    with output.progress(f"{model} in {env}", len(rows)) as advance:
        sent = traffic.run(loaded, model, env, rows, batch_size, out_file, labels_file, advance)
    summary = sent.to_dict()
    if fmt == "json":
        output.emit_json("PredictResult", {"model": model, "environment": env, "url": sent.url, **summary})
    else:
        output.table(
            f"{model} in {env} ({sent.url})",
            ["rows", "requests", "failed", "answered by", "p50 ms", "max ms"],
            [
                (
                    summary["rows"],
                    summary["requests"],
                    sum(sent.failed.values()),
                    ", ".join(f"v{v}: {n} rows" for v, n in summary["versions"].items()) or "-",
                    summary["latency_p50_ms"],
                    summary["latency_max_ms"],
                )
            ],
        )
    if sent.failed:
        raise traffic.RequestsFailed(
            f"{model} in {env}: {sum(sent.failed.values())} of {sent.requests} requests failed "
            f"({', '.join(f'HTTP {k}: {n}' for k, n in sent.failed.items())}); see the server's log"
        )


@main.command()
@click.argument("model")
@click.option(
    "--version",
    "version",
    default=None,
    help="Version number or alias (default: the version ENV's manifest names, else the alias @ENV).",
)
@click.option(
    "--env", "env", default="local", show_default=True, help="Environment name for logs and /metadata."
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless you mean it)."
)
@click.option("--port", type=int, default=8080, show_default=True)
@click.pass_context
def serve(ctx: click.Context, model: str, version: str | None, env: str, host: str, port: int) -> None:
    """Serve one registered version in the foreground (/health, /predict, /metadata).

    The artifact is downloaded and its sha256 checked against the registration first.
    The reconciler runs the same server for each deployment of the local target.
    """
    from ..registry.client import Registry
    from ..serving import server

    loaded = repo(ctx)
    spec = server.spec_for(loaded, Registry(loaded), model, version, env)
    sys.exit(server.run(spec, host, port, token=os.urandom(16).hex()))
