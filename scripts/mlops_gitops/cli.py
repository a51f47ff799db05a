"""The `mlops` command: one thin function per verb; the work lives in the modules."""

from __future__ import annotations

import json
import os
import platform
import sys
import traceback
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from . import __version__, output
from .config import collect, find_root, load_repo
from .errors import ExitCode, MlopsError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Group(click.Group):
    """Catches the one user-facing error type once and prints it as one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlopsError as exc:
            output.error(escape(str(exc)))
            sys.exit(int(exc.exit_code))
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # an internal error: one line, the traceback with --verbose
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            output.error(
                escape(f"internal error: {type(exc).__name__}: {exc} (run with --verbose for details)")
            )
            sys.exit(int(ExitCode.ERROR))


def _root(ctx: click.Context) -> Path:
    repo: Path | None = ctx.obj.get("repo")
    return find_root(repo)


output_option = click.option(
    "--output",
    "-o",
    "fmt",
    type=click.Choice(output.OUTPUT_FORMATS),
    default="table",
    show_default=True,
    help="table for people, json for machines.",
)


@click.group(cls=Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(
    __version__,
    "--version",
    "-V",
    prog_name="mlops",
    message=f"%(prog)s %(version)s (python {platform.python_version()})",
)
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MLOPS_REPO",
    help="Repository root (default: the nearest directory above holding mlops.yaml).",
)
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def main(ctx: click.Context, repo: Path | None, verbose: bool) -> None:
    """Run a model's life from a GitOps repository.

    Promotion is a pull request that edits environments/<env>/<model>.yaml; every verb
    reads its names and settings from mlops.yaml. Exit codes: 0 ok, 1 the check found
    problems, 2 the command could not run (bad usage, unreadable input).
    """
    ctx.ensure_object(dict)
    ctx.obj.update(repo=repo, verbose=verbose)


@main.command()
@output_option
@click.pass_context
def validate(ctx: click.Context, fmt: str) -> None:
    """Check mlops.yaml, every model definition and every manifest.

    Reports every problem at once, one per line, as `path: field: problem (expected ...)`,
    and exits 1 if there is any. Never changes a file.
    """
    root = _root(ctx)
    _, problems, checked = collect(root)
    if fmt == "json":
        output.emit_json(
            "ValidationResult",
            {
                "valid": not problems,
                "files": checked,
                "problems": [
                    {"path": p.path, "field": p.field, "problem": p.problem, "expected": p.expected}
                    for p in problems
                ],
            },
        )
    else:
        for problem in problems:
            output.stdout.print(escape(str(problem)), highlight=False)
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
@output_option
@click.pass_context
def model_add(ctx: click.Context, name: str, fmt: str) -> None:
    """Scaffold models/NAME/model.yaml and NAME's manifest in every environment.

    NAME must be a DNS-1123 label. Nothing is written unless every file renders and
    validates; an interrupted run can be repeated and finishes the job.
    """
    from .scaffold import add_model, load_for_add

    root = _root(ctx)
    planned = add_model(load_for_add(root, name), name)
    load_repo(root)  # the repository as a whole must still validate
    rows = [(p.path.relative_to(root).as_posix(), "unchanged" if p.exists else "created") for p in planned]
    if fmt == "json":
        output.emit_json("ModelAdded", {"model": name, "files": [{"path": a, "result": b} for a, b in rows]})
    else:
        output.table(f"model {name}", ["file", "result"], rows)
        output.stderr.print(
            f"next: describe it in models/{name}/model.yaml, then `mlops validate`", highlight=False
        )


@model.command("list")
@output_option
@click.pass_context
def model_list(ctx: click.Context, fmt: str) -> None:
    """Every model with its owner, risk tier and the version each environment asks for."""
    repo = load_repo(_root(ctx))
    rows = []
    for name, definition in sorted(repo.models.items()):
        versions = {env: repo.manifests[(env, name)]["version"] for env in repo.environments}
        rows.append(
            {
                "model": name,
                "owner": definition["owner"],
                "task": definition["task"],
                "risk_tier": definition["risk_tier"],
                "versions": versions,
            }
        )
    if fmt == "json":
        output.emit_json("ModelList", {"models": rows})
    else:
        output.table(
            "models",
            ["model", "owner", "task", "risk tier", *repo.environments],
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


@main.command()
@click.argument("models", nargs=-1)
@click.option(
    "--report/--no-report",
    "with_report",
    default=False,
    help="Also write each version's champion/challenger report (exit 1 if one fails).",
)
@click.option("--baseline", default="production", show_default=True, help="Baseline for --report.")
@output_option
@click.pass_context
def register(ctx: click.Context, models: tuple[str, ...], with_report: bool, baseline: str, fmt: str) -> None:
    """Log the pipeline's trained MODELS to MLflow and register a version of each.

    Each version carries its lineage as `mlops.*` tags: git commit and dirty flag, branch,
    dvc.lock and data hashes, params, metrics, runner, device, Python and package versions,
    and the sha256 of the model artifact. Registering the same pipeline output again
    returns the existing version. Without MODELS: every model the pipeline has trained.
    The registry is mlops.yaml's tracking_uri unless MLFLOW_TRACKING_URI is set.
    With --report, the report of each version against --baseline is written to
    reports/<model>/v<N>/ (and to the job summary on GitHub Actions).
    """
    from .lineage import PipelineOutputs
    from .registry import Registry

    repo = load_repo(_root(ctx))
    names = list(models) or [
        m for m in sorted(repo.models) if PipelineOutputs(m, repo.root).estimator.is_file()
    ]
    if not names:
        raise MlopsError("no trained model found under pipelines/out/ (expected `make train` to have run)")
    registry = Registry(repo)
    results = []
    with output.stderr.status(f"registering {', '.join(names)} in {registry.uri}"):
        for name in names:
            results.append(registry.register(name))
    rows: list[dict[str, Any]] = [
        {
            "model": r.model,
            "version": r.version,
            "result": "registered" if r.created else "unchanged",
            "run_id": r.run_id,
            "artifact_sha256": r.tags.get("mlops.artifact_sha256", ""),
        }
        for r in results
    ]
    failed = []
    if with_report:
        for row in rows:
            result, _, target = _write_report(
                repo, registry, row["model"], str(row["version"]), baseline, None
            )
            row["report"] = {"passed": result.passed, "path": str(target / "report.md")}
            if not result.passed:
                failed.append(f"{row['model']} v{row['version']}")
    if fmt == "json":
        output.emit_json("RegisterResult", {"registry": registry.uri, "versions": rows})
    else:
        output.table(
            f"registry {registry.uri}",
            ["model", "version", "result", "artifact sha256", "report"],
            [
                (
                    r["model"],
                    r["version"],
                    r["result"],
                    r["artifact_sha256"][:16],
                    ("passed" if r["report"]["passed"] else "FAILED") if "report" in r else "-",
                )
                for r in rows
            ],
        )
    if failed:
        output.error(f"champion/challenger report failed for {', '.join(failed)} (see reports/)")
        sys.exit(int(ExitCode.FAILED))


def _write_report(
    repo: Any, registry: Any, model: str, candidate: str, baseline: str | None, out_dir: Path | None
) -> tuple[Any, str, Path]:
    """Build, write (report.md, report.json, plots) and record one report; also to the job summary."""
    from . import report as reporting

    target = out_dir or repo.root / "reports" / model / f"v{candidate.lstrip('@')}"
    with output.stderr.status(f"scoring {model} v{candidate} and its baseline"):
        result = reporting.build(repo, registry, model, candidate, baseline, target)
    text = reporting.markdown(result)
    (target / "report.md").write_text(text)
    (target / "report.json").write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    reporting.record(registry, result, text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return result, text, target


@main.command()
@click.argument("model")
@click.option("--candidate", required=True, help="Candidate version number (or alias).")
@click.option(
    "--baseline",
    default=None,
    help="production, staging, any alias, or a version number. Without it: thresholds alone.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for report.md, report.json and the PNG plots (default: reports/<model>/v<N>).",
)
@click.option(
    "--output",
    "-o",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
    help="What to print on stdout.",
)
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
    from .registry import Registry

    repo = load_repo(_root(ctx))
    result, text, target = _write_report(repo, Registry(repo), model, candidate, baseline, out_dir)
    if fmt == "json":
        output.emit_json("ChampionChallengerReport", {**result.to_json(), "directory": str(target)})
    else:
        sys.stdout.write(text)
        output.stderr.print(f"report: {target / 'report.md'}", highlight=False)
    if not result.passed:
        sys.exit(int(ExitCode.FAILED))


if __name__ == "__main__":
    main()
