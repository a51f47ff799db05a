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
@click.option(
    "--promote-to",
    "promote_to",
    default=None,
    help="After a passing report, open the promotion pull request to this environment.",
)
@output_option
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
    and the sha256 of the model artifact. Registering the same pipeline output again
    returns the existing version. Without MODELS: every model the pipeline has trained.
    The registry is mlops.yaml's tracking_uri unless MLFLOW_TRACKING_URI is set.
    With --report, the report of each version against --baseline is written to
    reports/<model>/v<N>/ (and to the job summary on GitHub Actions); with --promote-to,
    a new version whose report passed gets its promotion pull request (`mlops promote`).
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
            elif promote_to and row["result"] == "registered":
                from .promote import promote as open_promotion

                promoted = open_promotion(
                    repo,
                    lambda _m, _v: True,
                    row["model"],
                    promote_to,
                    int(row["version"]),
                    None,
                    f"trained and registered; report passed against {baseline}",
                )
                row["promotion"] = {"branch": promoted.branch, "pull_request": promoted.pull_request}
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
    for row in rows:
        if "promotion" in row:
            output.stderr.print(
                f"promotion of {row['model']} v{row['version']}: branch "
                f"{row['promotion']['branch']}; pull request: {row['promotion']['pull_request']}",
                highlight=False,
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


@main.command()
@click.argument("model")
@click.option("--to", "env", required=True, help="Environment whose manifest changes.")
@click.option("--version", "version", type=int, default=None, help="Registered version to promote.")
@click.option("--from", "source", default=None, help="Promote the version another environment runs.")
@click.option("--reason", default="promotion", show_default=True, help="Why; goes into the commit and PR.")
@click.option("--no-pr", is_flag=True, help="Commit on the branch but do not push or open a pull request.")
@output_option
@click.pass_context
def promote(
    ctx: click.Context,
    model: str,
    env: str,
    version: int | None,
    source: str | None,
    reason: str,
    no_pr: bool,
    fmt: str,
) -> None:
    """Open the pull request that promotes a registered version of MODEL to an environment.

    Edits environments/<env>/<MODEL>.yaml on the branch promote/<MODEL>-<env>-v<N> and
    commits it. With `gh` installed and authenticated it pushes and opens the pull request;
    otherwise it prints the exact command. An unknown model, environment or version is
    refused and nothing changes. Policies judge the pull request (`mlops check`).
    """
    from . import promote as promotion
    from .registry import Registry

    repo = load_repo(_root(ctx))
    registry = Registry(repo)

    def exists(name: str, number: int) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            registry.client.get_model_version(name, str(number))
            return True
        except MlflowException:
            return False

    result = promotion.promote(repo, exists, model, env, version, source, reason, open_pr=not no_pr)
    if fmt == "json":
        output.emit_json(
            "Promotion",
            {
                "model": result.model,
                "environment": result.environment,
                "version": result.version,
                "previous": result.previous,
                "branch": result.branch,
                "commit": result.commit,
                "pull_request": result.pull_request,
                "changed": result.changed,
            },
        )
    else:
        verb = "promoted" if result.changed else "already promoted"
        output.stdout.print(
            f"{verb}: {model} v{result.version} to {env} on branch {result.branch} ({result.commit[:8]})",
            highlight=False,
        )
        output.stdout.print(f"pull request: {result.pull_request}", highlight=False)


@main.command()
@click.option("--base", default=None, help="Base revision (default: merge base with the PR's base or main).")
@click.option("--head", default="HEAD", show_default=True, help="Head revision.")
@click.option("--now", "now", default=None, envvar="MLOPS_NOW", help="The time policies judge at (RFC 3339).")
@click.option(
    "--event",
    "event_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="GITHUB_EVENT_PATH",
    help="GitHub event payload (default: $GITHUB_EVENT_PATH).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write one <env>--<model>.json per change here.",
)
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
    from . import facts as gathering
    from .registry import Registry

    repo = load_repo(_root(ctx))
    event = json.loads(event_file.read_text()) if event_file else None
    documents = gathering.build(
        repo,
        Registry(repo),
        base or gathering.default_base(repo.root),
        head,
        gathering.now_rfc3339(now),
        event,
        gathering.gh_reviews(repo.root, event),
    )
    text = json.dumps(documents, indent=2, sort_keys=True) + "\n"
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        for document in documents:
            change = document["change"]
            path = out_dir / f"{change['environment']}--{change['model']}.json"
            path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    sys.stdout.write(text)


CHECK_FORMATS = ("table", "json", "junit", "github", "sarif", "markdown")


@main.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--policy",
    "-p",
    "policy_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Policy directory (repeatable; default: policies/).",
)
@click.option(
    "--namespace", "-n", "namespaces", multiple=True, help="Namespace or glob (with FILES; default main)."
)
@click.option("--all-namespaces", is_flag=True, help="Evaluate every namespace (with FILES).")
@click.option(
    "--data",
    "-d",
    "data_files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="YAML/JSON data, merged into data.* (repeatable).",
)
@click.option("--output", "-o", "fmt", type=click.Choice(CHECK_FORMATS), default="table", show_default=True)
@click.option("--fail-on-warn", is_flag=True, help="Exit 1 on warnings only, 2 on failures (as conftest).")
@click.option("--no-fail", is_flag=True, help="Always exit 0.")
@click.pass_context
def check(
    ctx: click.Context,
    files: tuple[Path, ...],
    policy_dirs: tuple[Path, ...],
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    data_files: tuple[Path, ...],
    fmt: str,
    fail_on_warn: bool,
    no_fail: bool,
) -> None:
    """Evaluate the Rego policies, with conftest's conventions and exit codes.

    Without FILES: every manifest (environments/*/*.yaml) against the `manifests`
    namespace and every workflow (.github/workflows/*.yml) against `workflows`. With
    FILES: those files against --namespace (default main) or --all-namespaces, as
    `conftest test`. Uses the real conftest when it is on PATH, else the embedded OPA.
    """
    import shutil

    from . import policy, yamlio

    try:
        root = _root(ctx)
    except MlopsError:
        if not (files and policy_dirs):
            raise
        root = Path.cwd()  # FILES and --policy: usable anywhere, like conftest
    dirs = list(policy_dirs) or [root / "policies"]
    data: dict[str, Any] = {}
    for data_file in data_files:
        loaded = yamlio.loads_data(data_file.read_text(), str(data_file))
        if isinstance(loaded, dict):
            data.update(loaded)
    if files:
        groups = [([str(f) for f in files], list(namespaces), all_namespaces)]
    else:
        manifests = sorted(str(p.relative_to(root)) for p in (root / "environments").glob("*/*.yaml"))
        workflows = sorted(str(p.relative_to(root)) for p in (root / ".github/workflows").glob("*.y*ml"))
        groups = [(manifests, ["manifests"], False), (workflows, ["workflows"], False)]
    results: list[policy.FileResult] = []
    binary = shutil.which("conftest")
    policy_files = policy.load_policies(dirs, root)
    for names, wanted, every in groups:
        if binary:
            results += policy.conftest_test(binary, dirs, names, wanted, every, list(data_files))
            continue
        inputs = [
            (name, yamlio.loads_data((root / name).read_text(encoding="utf-8"), name)) for name in names
        ]
        selected = policy.select_namespaces(policy_files, wanted, every)
        results += policy.evaluate(policy_files, inputs, selected, data)
    code = policy.exit_code(results, fail_on_warn, no_fail)
    if fmt == "json":
        sys.stdout.write(json.dumps(policy.to_conftest_json(results), indent=2) + "\n")
    elif fmt == "github":
        sys.stdout.write(policy.to_github(results) + "\n")
    elif fmt == "junit":
        sys.stdout.write(policy.to_junit(results))
    elif fmt == "sarif":
        sys.stdout.write(json.dumps(policy.to_sarif(results), indent=2) + "\n")
    elif fmt == "markdown":
        sys.stdout.write(policy.to_markdown(results) + "\n")
    else:
        rows = [(r.filename, r.namespace, f.kind.upper(), f.rule, f.msg) for r in results for f in r.findings]
        if rows:
            output.table("policy findings", ["file", "namespace", "result", "rule", "message"], rows)
    counts = {k: sum(len(r.of(k)) for r in results) for k in ("failure", "warning", "exception")}
    tests = sum(r.successes + len(r.findings) for r in results)
    output.stderr.print(
        f"{tests} tests, {tests - sum(counts.values())} passed, {counts['warning']} warnings, "
        f"{counts['failure']} failures, {counts['exception']} exceptions "
        f"({'conftest' if binary else 'embedded OPA'})",
        highlight=False,
    )
    sys.exit(code)


@main.command()
@click.option(
    "--name", required=True, help="Which comment (e.g. policy-gate); one per name per pull request."
)
@click.option("--body-file", type=click.File("r"), required=True, help="Markdown body ('-' for stdin).")
@click.option(
    "--repository", envvar="GITHUB_REPOSITORY", required=True, help="owner/name ($GITHUB_REPOSITORY)."
)
@click.option("--pr", "number", type=int, default=None, help="Pull request number (default: from the event).")
@click.option(
    "--event",
    "event_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="GITHUB_EVENT_PATH",
    help="GitHub event payload (default: $GITHUB_EVENT_PATH).",
)
def comment(name: str, body_file: Any, repository: str, number: int | None, event_file: Path | None) -> None:
    """Post a pull-request comment, or update the one this command posted before under --name."""
    from . import comment as commenting

    if number is None and event_file is not None:
        number = (json.loads(event_file.read_text()).get("pull_request") or {}).get("number")
    if number is None:
        raise MlopsError("comment: no pull request number (expected --pr N or a pull_request event)")
    action, comment_id = commenting.upsert(
        commenting.GhCli(), repository, int(number), name, body_file.read()
    )
    output.stderr.print(f"{action} comment {comment_id} on {repository}#{number}", highlight=False)


@main.group("policy")
def policy_group() -> None:
    """The Rego policies in policies/: run their tests."""


@policy_group.command("test")
@click.option(
    "--policy",
    "-p",
    "policy_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Policy directory (repeatable; default: policies/).",
)
@output_option
@click.pass_context
def policy_test(ctx: click.Context, policy_dirs: tuple[Path, ...], fmt: str) -> None:
    """Run every `test_*` rule in the *_test.rego files, like `conftest verify`. Exit 1 on a failure."""
    from . import policy

    root = _root(ctx)
    files = policy.load_policies(list(policy_dirs) or [root / "policies"], root)
    outcomes = policy.verify(files)
    failed = [f"{pkg}.{name}" for pkg, name, ok in outcomes if not ok]
    untested = sorted(
        {f.package for f in files if not f.is_test} - {p.removesuffix("_test") for p, _, _ in outcomes}
    )
    if fmt == "json":
        output.emit_json(
            "PolicyTestResult",
            {
                "tests": [{"package": p, "rule": n, "passed": ok} for p, n, ok in outcomes],
                "failed": failed,
                "untested_packages": untested,
            },
        )
    else:
        output.table(
            "policy tests",
            ["package", "test", "result"],
            [(p, n, "PASS" if ok else "FAIL") for p, n, ok in outcomes],
        )
        output.stderr.print(
            f"{len(outcomes)} tests, {len(outcomes) - len(failed)} passed, {len(failed)} failed"
            + (f"; packages without tests: {', '.join(untested)}" if untested else ""),
            highlight=False,
        )
    if failed or untested:
        sys.exit(int(ExitCode.FAILED))


if __name__ == "__main__":
    main()
