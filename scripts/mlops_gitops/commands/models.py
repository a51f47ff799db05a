"""`mlops validate`, `mlops model add`, `mlops model list`: the repository's models and files."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from ..core import output
from ..core.config import collect, load_repo, placeholder_owners
from ..core.errors import ExitCode, MlopsError
from . import options
from .app import main, repo, root


@main.command()
@options.output_format()
@click.pass_context
def validate(ctx: click.Context, fmt: str) -> None:
    """Check mlops.yaml, every model definition and card, every manifest, and the pipeline's
    parameters (a section for every model).

    Reports every problem at once, one per line, as `path: field: problem (expected ...)`,
    and exits 1 if there is any. Warns (exit 0) about owners that still name the template's
    placeholder organisation. Never changes a file.
    """
    loaded, problems, checked = collect(root(ctx))
    warnings = placeholder_owners(loaded.project) if loaded is not None else []
    if fmt == "json":

        def listed(found: list[Any]) -> list[dict[str, str]]:
            return [
                {"path": p.path, "field": p.field, "problem": p.problem, "expected": p.expected}
                for p in found
            ]

        output.emit_json(
            "ValidationResult",
            {
                "valid": not problems,
                "files": checked,
                "problems": listed(problems),
                "warnings": listed(warnings),
            },
        )
    else:
        for problem in problems:
            output.stdout.print(escape(str(problem)), highlight=False)
        for warning in warnings:
            output.stderr.print(escape(f"warning: {warning}"), highlight=False)
        summary = (
            f"{len(problems)} problem(s) in {len({p.path for p in problems})} file(s)"
            if problems
            else "all valid"
        )
        output.stderr.print(f"{summary}; {len(checked)} file(s) checked", highlight=False)
    if problems:
        sys.exit(int(ExitCode.FAILED))


@main.group()
def model() -> None:
    """Models defined in models/: list them, add one."""


@model.command("add")
@click.argument("name")
@click.option(
    "--like",
    "like",
    default=None,
    metavar="OTHER",
    help="Copy OTHER's settings: thresholds, drift, fairness, risk tier, pipeline parameters, "
    "each manifest's target (never its words).",
)
@click.option("--purpose", default="", help="One line: the decision NAME's scores serve (else a TODO).")
@click.option(
    "--data",
    "data",
    default=None,
    metavar="PATH|URL",
    help="The team's own table (.csv or .parquet): copied to pipelines/sources/NAME.EXT and tracked "
    "with `dvc add`, or a URL tracked with `dvc import-url`. Needs --target.",
)
@click.option("--target", default=None, metavar="COLUMN", help="The table's label column (with --data).")
@click.option(
    "--task",
    "task_name",
    type=click.Choice(["binary", "multiclass", "regression"]),
    default=None,
    help="The task (with --data); inferred from the target when not given: two values is binary, "
    "a few labels multiclass, numbers regression.",
)
@click.option(
    "--id", "ids", multiple=True, metavar="COLUMN", help="A column that identifies a row (not a feature)."
)
@options.output_format()
@click.pass_context
def model_add(
    ctx: click.Context,
    name: str,
    like: str | None,
    purpose: str,
    data: str | None,
    target: str | None,
    task_name: str | None,
    ids: tuple[str, ...],
    fmt: str,
) -> None:
    """Scaffold NAME: models/NAME/model.yaml and card.md, its section of the pipeline's
    parameters (pipelines/params.yaml, so `make train` trains it) and its manifest in every
    environment.

    Without --data NAME trains the example's table; with --data PATH --target COLUMN it trains
    the team's own: its task, features and metrics follow from the table, and the columns that
    may be sensitive features are offered for the fairness check (never chosen).

    NAME must be a DNS-1123 label. The model's words (description, intended use, out of
    scope, limitations) start as TODO placeholders: production is denied until they are
    written. Nothing is written unless every file renders and validates and the table fits;
    an interrupted run can be repeated and finishes the job.
    """
    from ..core.scaffold import add_model, load_for_add, plan_model

    where = root(ctx)
    repo = load_for_add(where, name)
    with tempfile.TemporaryDirectory() as scratch:
        table, local = _table(data, target, task_name, list(ids), Path(scratch))
        plan_model(repo, name, like, purpose, table)  # every file renders and validates first
        tracked = None
        if table is not None and data is not None and local is not None:
            from ..core.scaffold import source_of
            from ..core.tables import place

            tracked = place(where, data, local, source_of(name, local.suffix))
        planned = add_model(repo, name, like, purpose, table)
    load_repo(where)  # the repository as a whole must still validate
    rows = [
        (
            p.path.relative_to(where).as_posix(),
            ("section added" if p.section else "created") if not p.exists else "unchanged",
        )
        for p in planned
    ]
    found = table.summary() if table is not None else None
    if fmt == "json":
        output.emit_json(
            "ModelAdded",
            {
                "model": name,
                "like": like,
                "files": [{"path": a, "result": b} for a, b in rows],
                **({"data": {**(found or {}), "tracked": tracked}} if found else {}),
            },
        )
        return
    output.table(f"model {name}" + (f" (like {like})" if like else ""), ["file", "result"], rows)
    if table is not None:
        output.stderr.print(
            f"{tracked}\n{table.task.value} on {table.target!r}: {table.rows} rows, "
            f"{len(table.numeric)} numeric and {len(table.categorical)} categorical features\n"
            f"fairness: name sensitive features in models/{name}/model.yaml; columns that may be one: "
            f"{', '.join(table.sensitive_candidates) or 'none found'}",
            highlight=False,
        )
    output.stderr.print(
        f"next: write its words in models/{name}/model.yaml (description, card:), `make train` "
        f"to train it, then `mlops register {name} --report`",
        highlight=False,
    )


def _table(
    data: str | None, target: str | None, task_name: str | None, ids: list[str], scratch: Path
) -> tuple[Any, Path | None]:
    """The team's table, read and judged (None without --data), and where it is on this disk."""
    if data is None:
        if target or task_name or ids:
            raise MlopsError(
                "--target, --task and --id go with --data (expected --data PATH --target COLUMN)"
            )
        return None, None
    if not target:
        raise MlopsError("--data: needs --target COLUMN (expected the table's label column)")
    from ..core import tables
    from ..core.tasks import parse

    local = tables.fetch(data, scratch) if tables.is_url(data) else Path(data).expanduser().absolute()
    frame = tables.read(local, data)
    return tables.judge(frame, data, target, parse(task_name) if task_name else None, ids), local


@model.command("list")
@options.output_format()
@click.pass_context
def model_list(ctx: click.Context, fmt: str) -> None:
    """Every model with its owner, risk tier and the version each environment asks for."""
    loaded = repo(ctx)
    rows = [
        {
            "model": name,
            "owner": definition["owner"],
            "task": definition["task"],
            "risk_tier": definition["risk_tier"],
            "versions": {env: loaded.manifests[(env, name)]["version"] for env in loaded.environments},
        }
        for name, definition in sorted(loaded.models.items())
    ]
    if fmt == "json":
        output.emit_json("ModelList", {"models": rows})
        return
    output.table(
        "models",
        ["model", "owner", "task", "risk tier", *loaded.environments],
        [
            (
                r["model"],
                r["owner"],
                r["task"],
                r["risk_tier"],
                *("-" if v is None else f"v{v}" for v in r["versions"].values()),
            )
            for r in rows
        ],
    )
