"""The `mlops` command: one thin function per verb; the work lives in the modules."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
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
@click.option(
    "--like",
    "like",
    default=None,
    help="Copy OTHER's settings: thresholds, drift, fairness, "
    "risk tier, pipeline parameters, each manifest's target (never its words).",
    metavar="OTHER",
)
@click.option("--purpose", default="", help="One line: the decision NAME's scores serve (else a TODO).")
@output_option
@click.pass_context
def model_add(ctx: click.Context, name: str, like: str | None, purpose: str, fmt: str) -> None:
    """Scaffold NAME: models/NAME/model.yaml and card.md, its section of the pipeline's
    parameters (pipelines/params.yaml, so `make train` trains it) and its manifest in every
    environment.

    NAME must be a DNS-1123 label. The model's words (description, intended use, out of
    scope, limitations) start as TODO placeholders: production is denied until they are
    written. Nothing is written unless every file renders and validates; an interrupted run
    can be repeated and finishes the job.
    """
    from .scaffold import add_model, load_for_add

    root = _root(ctx)
    planned = add_model(load_for_add(root, name), name, like, purpose)
    load_repo(root)  # the repository as a whole must still validate
    rows = [(p.path.relative_to(root).as_posix(), "unchanged" if p.exists else "created") for p in planned]
    rows = [
        (path, "section added" if path.endswith("params.yaml") and r == "created" else r) for path, r in rows
    ]
    if fmt == "json":
        output.emit_json(
            "ModelAdded", {"model": name, "like": like, "files": [{"path": a, "result": b} for a, b in rows]}
        )
    else:
        output.table(f"model {name}" + (f" (like {like})" if like else ""), ["file", "result"], rows)
        output.stderr.print(
            f"next: write its words in models/{name}/model.yaml (description, card:), `make train` "
            f"to train it, then `mlops register {name} --report`",
            highlight=False,
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
    for r in results:
        if r.created and r.tags.get("mlops.git.dirty") == "true":
            untracked = json.loads(r.tags.get("mlops.git.untracked") or "[]")
            output.stderr.print(
                f"warning: {r.model} v{r.version} comes from uncommitted work"
                + (f" ({', '.join(untracked)} not in git)" if untracked else "")
                + ": its lineage's commit does not reproduce it (expected `git add` + `git commit` "
                "of what the pipeline wrote, before `mlops register`)",
                highlight=False,
            )
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
                    checkout=False,  # each model's promotion branches from here, not from another's
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
    reporting.record(registry, result, text, target)
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
@click.option(
    "--no-checkout",
    is_flag=True,
    help="Leave the working tree and the current branch as they are (the branch is made all the same).",
)
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
    no_checkout: bool,
    fmt: str,
) -> None:
    """Open the pull request that promotes a registered version of MODEL to an environment.

    Commits the edited environments/<env>/<MODEL>.yaml on the branch
    promote/<MODEL>-<env>-v<N>, made from the current branch, and switches to it (unless
    --no-checkout); it says where you are and how to get back. With `gh` installed and
    authenticated it pushes and opens the pull request; otherwise it prints the exact
    command. An unknown model, environment or version is refused and nothing changes.
    Policies judge the pull request (`make policy`, `mlops check`).
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

    result = promotion.promote(
        repo, exists, model, env, version, source, reason, open_pr=not no_pr, checkout=not no_checkout
    )
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
                "checked_out": result.checked_out,
                "base": result.base,
            },
        )
    else:
        verb = "promoted" if result.changed else "already promoted"
        output.stdout.print(
            f"{verb}: {model} v{result.version} to {env} on branch {result.branch} ({result.commit[:8]})",
            highlight=False,
        )
        output.stdout.print(f"pull request: {result.pull_request}", highlight=False)
    where = (
        f"you are on {result.branch} now; back: git switch {result.base}"
        if result.checked_out
        else f"you are still on {result.base}; the promotion: git switch {result.branch}"
    )
    output.stderr.print(where, highlight=False)


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
@click.option(
    "--record",
    is_flag=True,
    help="Keep each decision on a promotion (facts FILES): its facts, findings and the sha256 and "
    "source of every policy file, in the version's run in the registry, for `mlops evidence`.",
)
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
    record: bool,
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
    if record and files:  # after the verdict is out: a registry that fails cannot hide it
        from . import evidence
        from .registry import Registry

        engine = "conftest" if binary else "embedded OPA"
        try:
            registry = Registry(load_repo(root))
            kept = evidence.record_decisions(registry, root, list(files), results, policy_files, engine)
        except MlopsError as exc:
            output.error(escape(f"decision not recorded: {exc}"))
            sys.exit(int(ExitCode.ERROR))
        for where in kept:
            output.stderr.print(f"decision recorded: {where}", highlight=False)
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


@main.command()
@click.option("--name", required=True, help="Which alert (e.g. drift-production); one open issue per name.")
@click.option("--title", required=True, help="The issue's title.")
@click.option("--body-file", type=click.File("r"), required=True, help="Markdown body ('-' for stdin).")
@click.option(
    "--repository", envvar="GITHUB_REPOSITORY", required=True, help="owner/name ($GITHUB_REPOSITORY)."
)
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
    import shutil
    import subprocess

    from . import comment as commenting

    body = body_file.read()
    values = dict(item.split("=", 1) for item in inputs if "=" in item)
    bad = [item for item in inputs if "=" not in item]
    if bad:
        raise MlopsError(f"--input {bad[0]!r}: expected KEY=VALUE")
    ready = shutil.which("gh") is not None and (
        subprocess.run(["gh", "auth", "status"], capture_output=True).returncode == 0
    )
    if not ready:
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
    github = commenting.GhCli()
    action, number = commenting.upsert_issue(github, repository, name, title, body)
    output.stderr.print(f"{action} issue {repository}#{number}", highlight=False)
    if workflow:
        commenting.dispatch(github, repository, workflow, ref, values)
        output.stderr.print(f"dispatched {workflow} on {ref}", highlight=False)


@main.command()
@click.argument("models", nargs=-1)
@click.option("--env", "env", required=True, help="The environment whose inference log is judged.")
@click.option(
    "--since", default=None, help="Window: 24h, 7d, 30m or an RFC 3339 time (default: the whole log)."
)
@click.option(
    "--reference",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Reference data (CSV) instead of the serving version's training data.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the HTML and JSON reports go (default: .mlops/drift/<env>/<model>/).",
)
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
@click.option(
    "--output",
    "-o",
    "fmt",
    type=click.Choice(["table", "json", "markdown"]),
    default="table",
    show_default=True,
)
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
    HTML and a JSON report, prints one screen naming the drifted columns, and records the
    status as the model's tags mlops.drift.<env>.* (what the promotion gate reads).

    Exit codes: 0 no drift, 1 drift, 2 error, 3 not enough data (for every model).
    """
    from . import drift as measuring
    from .registry import Registry

    repo = load_repo(_root(ctx))
    repo.require_environment(env)
    names = list(models) or sorted(
        m for (e, m), manifest in repo.manifests.items() if e == env and manifest.get("version") is not None
    )
    registry = Registry(repo)
    results = []
    with output.stderr.status(f"measuring drift in {env} ({', '.join(names) or 'nothing deployed'})"):
        for name in names:
            result = measuring.run(repo, registry, name, env, since, reference, out_dir)
            if not no_record:
                measuring.record(repo.root, registry, result)
            results.append(result)
    markdown = measuring.to_markdown(results)
    if summary_file:
        summary_file.parent.mkdir(parents=True, exist_ok=True)
        summary_file.write_text(markdown)
    if drifted_file:
        drifted_file.parent.mkdir(parents=True, exist_ok=True)
        drifted_file.write_text(" ".join(r.model for r in results if r.status == measuring.STATUS_DRIFT))
    if fmt == "json":
        output.emit_json("DriftResult", {"results": [r.to_dict() for r in results]})
    elif fmt == "markdown":
        sys.stdout.write(markdown)
    else:
        for r in results:
            output.stdout.print(
                f"{r.model} v{r.version} in {r.environment}: {r.status}"
                + (f" ({r.severity}): {', '.join(r.drifted)}" if r.drifted else "")
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
                        for c in sorted(r.columns, key=lambda c: (not c.drifted, c.column))
                    ],
                )
    statuses = {r.status for r in results}
    if measuring.STATUS_DRIFT in statuses:
        sys.exit(int(ExitCode.FAILED))
    if results and statuses == {measuring.STATUS_INSUFFICIENT}:
        sys.exit(int(ExitCode.NOT_ENOUGH_DATA))


@main.command()
@click.argument("model")
@click.option("--env", "env", required=True, help="The environment whose predictions the labels belong to.")
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Ground truth: CSV request_id,label[,row] or JSON lines with those keys.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the HTML and JSON reports go (default: .mlops/feedback/<env>/<model>/).",
)
@click.option("--no-record", is_flag=True, help="Do not record the status on the registered model.")
@output_option
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
    from . import feedback as joining
    from .registry import Registry

    repo = load_repo(_root(ctx))
    registry = Registry(repo)
    result = joining.run(repo, registry, model, env, labels_file, out_dir)
    if not no_record:
        joining.record(repo.root, registry, result)
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
    if result.status == "degraded":
        sys.exit(int(ExitCode.FAILED))
    if result.status == "insufficient-data":
        sys.exit(int(ExitCode.NOT_ENOUGH_DATA))


def _reconciler(repo: Any, kind: str | None = None) -> Any:
    """The reconciler over this repository's registry and deployment target."""
    from .reconcile import Reconciler
    from .registry import Registry
    from .targets.kserve import KServeTarget
    from .targets.local import LocalTarget

    registry = Registry(repo)
    deploy = repo.project.get("deploy") or {}
    target: Any
    if (kind or deploy.get("target", "local")) == "kserve":
        target = KServeTarget(repo.root, deploy.get("kserve") or {}, registry)
    else:
        target = LocalTarget(repo.root, deploy.get("local") or {})
    return Reconciler(repo, registry, target)


target_option = click.option(
    "--target",
    "target_kind",
    type=click.Choice(["local", "kserve"]),
    default=None,
    help="Deployment target (default: deploy.target in mlops.yaml).",
)


def _emit_plan(changes: Any, fmt: str, title: str) -> None:
    from .reconcile import plan_document

    if fmt == "json":
        output.emit_json("Plan", plan_document(changes))
        return
    rows = [c.row() for c in changes]
    output.table(
        title,
        ["env", "model", "action", "sync", "health", "live", "desired", "detail"],
        [
            (
                r["environment"],
                r["model"],
                r["action"],
                r["sync"],
                r["health"],
                r["live"],
                r["desired"],
                r["detail"],
            )
            for r in rows
        ],
    )


@main.command()
@click.option("--env", "env", default=None, help="Only this environment (default: all).")
@target_option
@output_option
@click.pass_context
def plan(ctx: click.Context, env: str | None, target_kind: str | None, fmt: str) -> None:
    """Show what `mlops reconcile` would do: desired state (the manifests at HEAD) against
    live state (registry aliases and what the target runs).

    Each deployment is create, update, unchanged, remove or suspended, with its sync status
    (Synced / OutOfSync) and health (healthy / progressing / degraded / missing) kept apart,
    as in Argo CD. Exit codes as `argocd app diff` and `flux diff`: 0 nothing would change,
    1 something would, 2 error.
    """
    changes = _reconciler(load_repo(_root(ctx)), target_kind).plan(env)
    _emit_plan(changes, fmt, "plan")
    sys.exit(0 if all(c.sync == "Synced" for c in changes) else 1)


def _reconcile_once(
    repo: Any,
    target_kind: str | None,
    env: str | None,
    dry_run: bool,
    prune: bool,
    allow_empty: bool,
    fmt: str,
) -> bool:
    from . import reconcile as rec

    reconciler = _reconciler(repo, target_kind)
    outcomes: list[Any] = []
    with contextlib.ExitStack() as stack:
        for name in [env] if env else repo.environments:
            stack.enter_context(rec.env_lock(repo.root, name))
        changes = reconciler.plan(env)
        if not dry_run:
            with output.stderr.status("reconciling") as status:

                def progress(change: Any) -> None:
                    status.update(f"{change.environment}/{change.model}: {change.action}")

                outcomes = reconciler.apply(changes, prune=prune, allow_empty=allow_empty, progress=progress)
    if dry_run:
        _emit_plan(changes, fmt, "plan (dry run)")
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
@click.option("--env", "env", default=None, help="Only this environment (default: all, each locked).")
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
@target_option
@output_option
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
    import time

    root = _root(ctx)
    if not watch:
        ok = _reconcile_once(load_repo(root), target_kind, env, dry_run, prune, allow_empty, fmt)
        sys.exit(0 if ok else int(ExitCode.FAILED))
    from .gitinfo import git

    failures, rounds, last_rev = 0, 0, ""
    while True:
        rounds += 1
        if git(root, "remote", check=False):
            pulled = subprocess.run(
                ["git", "pull", "--ff-only", "--quiet"], cwd=root, capture_output=True, text=True
            )
            if pulled.returncode != 0:  # keep reconciling what is here; say why it is not newer
                said = (pulled.stderr or pulled.stdout).strip().splitlines()
                output.error(escape(f"git pull: {said[-1] if said else f'exit {pulled.returncode}'}"))
        rev = git(root, "rev-parse", "HEAD", check=False)
        if rev != last_rev:
            failures = 0  # a new revision is tried at once: a failed commit never blocks its fix
        last_rev = rev
        try:
            ok = _reconcile_once(load_repo(root), target_kind, env, dry_run, prune, allow_empty, fmt)
        except MlopsError as exc:
            output.error(escape(str(exc)))
            ok = False
        failures = 0 if ok else failures + 1
        if iterations and rounds >= iterations:
            sys.exit(0 if ok else int(ExitCode.FAILED))
        wait = interval if ok else min(max_backoff, interval * 2 ** (failures - 1))
        output.stderr.print(f"next reconcile in {wait:.1f}s", highlight=False)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:  # wake early when the revision changes
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            if git(root, "rev-parse", "HEAD", check=False) != last_rev:
                break


@main.command()
@click.argument("model", required=False)
@click.option("--env", "env", default=None, help="Only this environment.")
@click.option(
    "--url", "only_url", is_flag=True, help="Print only the URL (one MODEL in one --env), for scripts."
)
@target_option
@output_option
@click.pass_context
def status(
    ctx: click.Context, model: str | None, env: str | None, only_url: bool, target_kind: str | None, fmt: str
) -> None:
    """Which version runs where, its health, since when, at which URL (MODEL: only that model).

    `curl "$(mlops status MODEL --env staging --url)/predict" ...` calls a deployment.
    """
    from .records import RecordLog

    repo = load_repo(_root(ctx))
    if model is not None:
        repo.require_model(model)
    if only_url and (model is None or env is None):
        raise MlopsError(
            "status --url: name one MODEL and one --env (expected `mlops status MODEL --env E --url`)"
        )
    changes = [c for c in _reconciler(repo, target_kind).plan(env) if model is None or c.model == model]
    if only_url:
        url = changes[0].live.url if changes else ""
        if not url or changes[0].live.health == "missing":
            raise MlopsError(f"{model} in {env}: not running (expected `mlops reconcile --env {env}` first)")
        output.stdout.print(url, highlight=False)
        return
    log = RecordLog(repo.root)
    rows = []
    for c in changes:
        records, _ = log.read(c.environment, c.model)
        last = records[-1] if records else None
        healthy = next((r for r in reversed(records) if r.result == "healthy"), None)
        row = c.row()
        rows.append(
            {
                "environment": c.environment,
                "model": c.model,
                "serving": row["live"],
                "desired": row["desired"],
                "sync": c.sync,
                "health": c.live.health,
                "since": healthy.at if healthy else None,
                "url": c.live.url,
                "last_result": f"{last.result} {last.at}" if last else None,
            }
        )
    if fmt == "json":
        output.emit_json("Status", {"deployments": rows})
    else:
        output.table(
            "status",
            ["env", "model", "serving", "desired", "sync", "health", "since", "url", "last result"],
            [tuple(r.values()) for r in rows],
        )


@main.command()
@click.argument("model")
@click.option("--env", "env", required=True, help="The environment whose deployment answers.")
@click.option(
    "--input",
    "input_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Rows to send: CSV, JSON lines (.jsonl) or a JSON list (.json).",
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
@output_option
@click.pass_context
def predict(
    ctx: click.Context,
    model: str,
    env: str,
    input_file: Path,
    batch_size: int,
    out_file: Path | None,
    labels_file: Path | None,
    fmt: str,
) -> None:
    """Send rows to MODEL's deployment in ENV, in batches, as a client would.

    Each batch is one /predict request with its own request id, logged by the server like
    any client's: enough rows (models/MODEL/model.yaml drift.min_rows, 200 by default) give
    `mlops drift` a verdict, and --labels-out gives `mlops feedback` its ground truth.
    Exit 1 when a request failed.
    """
    from . import traffic
    from .traffic import RequestsFailed

    repo = load_repo(_root(ctx))
    definition = repo.require_model(model)
    repo.require_environment(env)
    live = _reconciler(repo).target.observe(env, model)
    if live.health == "missing" or not live.url:
        raise MlopsError(f"{model} in {env}: not running (expected `mlops reconcile --env {env}` first)")
    rows = traffic.read_rows(input_file)
    with output.progress(f"{model} in {env}", len(rows)) as advance:
        sent = traffic.send(live.url, rows, definition.get("target_column"), batch_size, advance)
    if out_file:
        traffic.write_csv(out_file, sent.answers, ["request_id", "row", "version", "prediction"])
    if labels_file:
        if not sent.labels:
            raise MlopsError(
                f"{input_file}: no column {definition.get('target_column')!r} (expected the target column "
                f"of models/{model}/model.yaml for --labels-out)"
            )
        traffic.write_csv(labels_file, sent.labels, ["request_id", "row", "label"])
    summary = sent.to_dict()
    if fmt == "json":
        output.emit_json("PredictResult", {"model": model, "environment": env, "url": live.url, **summary})
    else:
        output.table(
            f"{model} in {env} ({live.url})",
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
        raise RequestsFailed(
            f"{model} in {env}: {sum(sent.failed.values())} of {sent.requests} requests failed "
            f"({', '.join(f'HTTP {k}: {n}' for k, n in sent.failed.items())}); see the server's log"
        )


@main.command()
@click.option("--env", "env", default=None, help="Only this environment (default: all).")
@click.pass_context
def down(ctx: click.Context, env: str | None) -> None:
    """Stop the model servers the local target runs, cleanly (SIGTERM; in-flight requests finish).

    Registry aliases and manifests are left as they are: the next `mlops reconcile` starts
    them again.
    """
    from .targets.local import LocalTarget

    # Needs no valid configuration: the state files name every server, and stopping must work
    # even while a broken commit is checked out.
    target = LocalTarget(_root(ctx), {})
    stopped = []
    for environment, model in target.running():
        if env is None or environment == env:
            target.remove(environment, model)
            stopped.append(f"{environment}/{model}")
    output.stdout.print(f"stopped: {', '.join(stopped) or 'nothing was running'}", highlight=False)


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
    from . import serve as server
    from .records import inference_log, state_dir
    from .registry import Registry

    repo = load_repo(_root(ctx))
    registry = Registry(repo)
    repo.require_model(model)
    ref = version or (repo.manifests.get((env, model)) or {}).get("version") or env
    number = int(registry.version(model, ref).version)
    verified = registry.fetch_verified(model, number, state_dir(repo.root) / "artifacts")
    spec = {
        "model": model,
        "environment": env,
        "primary": [{"version": number, "path": str(verified.path), "percent": 100}],
        "shadow": None,
        "log": str(inference_log(repo.root, env, model)),
    }
    sys.exit(server.run(spec, host, port, token=os.urandom(16).hex()))


@main.command()
@click.argument("model")
@click.option("--env", "env", required=True, help="Environment whose last promotion is reverted.")
@click.option("--now", "now", is_flag=True, help="Also apply it at once (break-glass; recorded as such).")
@click.option("--direct", is_flag=True, help="Commit on the current branch instead of a rollback branch.")
@click.option(
    "--reason", default="rollback", show_default=True, help="Why; goes into the commit and the record."
)
@click.option("--no-pr", is_flag=True, help="Do not push or open a pull request.")
@output_option
@click.pass_context
def rollback(
    ctx: click.Context, model: str, env: str, now: bool, direct: bool, reason: str, no_pr: bool, fmt: str
) -> None:
    """Revert the last promotion of MODEL in ENV: the commit that restores the manifest's
    previous version, on the branch rollback/<model>-<env>-v<N> as a pull request (or
    --direct on the current branch). --now also reconciles it at once and records a
    break-glass event, for when waiting for review is worse than the risk.
    """
    from . import rollback as rb

    root = _root(ctx)
    repo = load_repo(root)
    result = rb.revert_last_promotion(repo, model, env, reason, direct=direct, open_pr=not no_pr)
    applied = None
    if now:
        from . import reconcile as rec

        if not direct:
            subprocess.run(["git", "switch", "--quiet", result["branch"]], cwd=root, check=True)
        repo = load_repo(root)
        reconciler = _reconciler(repo)
        with rec.env_lock(root, env):
            changes = [c for c in reconciler.plan(env) if c.model == model]
            outcomes = reconciler.apply(changes)
        rb.record_break_glass(repo, model, env, result, reason)
        applied = rec.summary(outcomes)
    if fmt == "json":
        output.emit_json("Rollback", {**result, "applied": applied})
    else:
        output.stdout.print(
            f"rollback: {model} in {env} v{result['from_version']} -> v{result['to_version']} "
            f"({result['commit'][:8]} on {result['branch']})",
            highlight=False,
        )
        output.stdout.print(f"pull request: {result['pull_request']}", highlight=False)
        if applied is not None:
            output.stdout.print(f"applied now (break-glass): {applied['counts']}", highlight=False)
    if applied is not None and not applied["ok"]:
        sys.exit(int(ExitCode.FAILED))


class DefaultGroup(Group):
    """A group whose first word, when it is not one of its commands, goes to `default`:
    `mlops evidence churn …` is `mlops evidence build churn …`."""

    default = "build"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


@main.group("evidence", cls=DefaultGroup)
def evidence_group() -> None:
    """Evidence packs for auditors: `mlops evidence MODEL --env E -o pack.zip`, then
    `mlops evidence verify pack.zip`. (A model named build or verify: `mlops evidence build NAME`.)"""


@evidence_group.command("build")
@click.argument("model", required=False)
@click.option("--env", "env", required=True, help="The environment whose deployment the pack proves.")
@click.option(
    "--version",
    "version",
    type=int,
    default=None,
    help="The version (default: the one @ENV points at, else the last one deployed there).",
)
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="A pack for every model whose manifest in ENV names a version (-o is then a directory).",
)
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=None,
    help="The zip to write (default: .mlops/evidence/ENV/MODEL-vN.zip); with --all, the directory.",
)
@click.option("--output", "fmt", type=click.Choice(output.OUTPUT_FORMATS), default="table", show_default=True)
@click.pass_context
def evidence_build(
    ctx: click.Context,
    model: str | None,
    env: str,
    version: int | None,
    every: bool,
    out: Path | None,
    fmt: str,
) -> None:
    """Write the evidence pack of MODEL's version in ENV: lineage, metrics and the champion/
    challenger report, every recorded policy decision with the policy files' hashes,
    approvals, deployment and rollback history, drift reports, the filled-in model card, an
    HTML summary grouped by control, and index.json with every file's sha256.

    The same inputs give the same bytes. Exit 0 when written, even with gaps or findings
    (listed in the pack and here); 2 on an error, with nothing written.
    """
    from . import evidence
    from .records import state_dir
    from .registry import Registry

    if bool(model) == every:
        raise MlopsError("evidence: name one MODEL or pass --all (expected exactly one of them)")
    if every and version is not None:
        raise MlopsError("evidence: --version names one model's version (expected it without --all)")
    repo = load_repo(_root(ctx))
    repo.require_environment(env)
    registry = Registry(repo)
    models = (
        [model]
        if model
        else sorted(m for (e, m), manifest in repo.manifests.items() if e == env and manifest.get("version"))
    )
    folder = out if every and out else state_dir(repo.root) / "evidence" / env
    written = []
    for name in models:
        with output.stderr.status(f"gathering the evidence for {name} in {env}"):
            pack = evidence.build(repo, registry, name, env, version)
        target = out if (out and not every) else folder / f"{name}-v{pack.version}.zip"
        digest = evidence.write(pack, target)
        written.append((pack, target, digest))
    documents = [
        {
            "path": str(target),
            "model": pack.model,
            "environment": env,
            "version": pack.version,
            "index_sha256": digest,
            "files": len(pack.files) + 1,
            "gaps": sorted(pack.gaps),
            "findings": pack.findings,
        }
        for pack, target, digest in written
    ]
    if fmt == "json":
        if every:
            output.emit_json("EvidencePacks", {"environment": env, "packs": documents})
        else:
            output.emit_json("EvidencePack", documents[0])
        return
    if not written:
        output.stdout.print(f"no model runs in {env}: no evidence pack", highlight=False)
    for pack, target, digest in written:
        output.stdout.print(
            f"evidence pack: {target} ({pack.model} v{pack.version} in {env}, {len(pack.files) + 1} "
            f"files, index sha256 {digest})",
            highlight=False,
        )
        for gap in sorted(pack.gaps):
            output.stderr.print(f"gap: {escape(gap)}", highlight=False)
        for finding in pack.findings:
            output.stderr.print(f"[bold red]finding:[/] {escape(finding)}", highlight=False)


@evidence_group.command("verify")
@click.argument("pack", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--digest", default=None, help="The index sha256 the pack must have (printed when it was built)."
)
@click.option("--output", "fmt", type=click.Choice(output.OUTPUT_FORMATS), default="table", show_default=True)
def evidence_verify(pack: Path, digest: str | None, fmt: str) -> None:
    """Check an evidence pack: every file against its sha256 in index.json, nothing added or
    removed, every required file there. Exit 0 intact, 1 tampered or incomplete (each file
    named), 2 not a pack."""
    from . import evidence

    verdict = evidence.verify(pack, digest)
    if fmt == "json":
        output.emit_json(
            "EvidenceVerification",
            {
                "path": str(pack),
                "ok": verdict.ok,
                "problems": verdict.problems,
                "index_sha256": verdict.digest,
                "files": verdict.files,
                "gaps": verdict.gaps,
            },
        )
    else:
        for problem in verdict.problems:
            output.error(escape(f"{pack}: {problem}"))
        if verdict.ok:
            output.stdout.print(
                f"{pack}: intact, {verdict.files} files match index.json (sha256 {verdict.digest})"
                + (f"; {len(verdict.gaps)} gaps noted by its builder" if verdict.gaps else ""),
                highlight=False,
            )
    sys.exit(int(ExitCode.OK if verdict.ok else ExitCode.FAILED))


@main.group("policy")
def policy_group() -> None:
    """The Rego policies in policies/: run their tests, see what a change to them would deny."""


@policy_group.command("test")
@click.option(
    "--policy",
    "-p",
    "policy_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Policy directory (repeatable; default: policies/).",
)
@click.option(
    "--coverage", is_flag=True, help="Report which policy lines the tests reached (as opa test --coverage)."
)
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    default=None,
    help="Fail when total coverage is below this percentage (implies --coverage).",
)
@output_option
@click.pass_context
def policy_test(
    ctx: click.Context,
    policy_dirs: tuple[Path, ...],
    coverage: bool,
    min_coverage: float | None,
    fmt: str,
) -> None:
    """Run every `test_*` rule in the *_test.rego files, like `conftest verify`.

    Exit 1 when a test fails, a policy package has no tests, or coverage is below
    --min-coverage. A policy that does not compile shows OPA's error with file and line.
    """
    from . import policy

    root = _root(ctx)
    files = policy.load_policies(list(policy_dirs) or [root / "policies"], root)
    report = policy.Coverage() if (coverage or min_coverage is not None) else None
    outcomes = policy.verify(files, coverage=report)
    failed = [f"{pkg}.{name}" for pkg, name, ok in outcomes if not ok]
    untested = sorted(
        {f.package for f in files if not f.is_test} - {p.removesuffix("_test") for p, _, _ in outcomes}
    )
    low = report is not None and min_coverage is not None and report.percent() < min_coverage
    if fmt == "json":
        document: dict[str, Any] = {
            "tests": [{"package": p, "rule": n, "passed": ok} for p, n, ok in outcomes],
            "failed": failed,
            "untested_packages": untested,
        }
        if report is not None:
            document["coverage"] = {"percent": report.percent(), "files": report.files()}
        output.emit_json("PolicyTestResult", document)
    else:
        output.table(
            "policy tests",
            ["package", "test", "result"],
            [(p, n, "PASS" if ok else "FAIL") for p, n, ok in outcomes],
        )
        if report is not None:
            output.table(
                "policy coverage",
                ["file", "covered lines", "not covered", "coverage"],
                [
                    (name, str(f["covered_lines"]), _line_ranges(f["not_covered_lines"]), f"{f['coverage']}%")
                    for name, f in report.files().items()
                ],
            )
        output.stderr.print(
            f"{len(outcomes)} tests, {len(outcomes) - len(failed)} passed, {len(failed)} failed"
            + (f"; packages without tests: {', '.join(untested)}" if untested else "")
            + (f"; coverage {report.percent()}%" if report is not None else "")
            + (f" (below --min-coverage {min_coverage}%)" if low else ""),
            highlight=False,
        )
    if failed or untested or low:
        sys.exit(int(ExitCode.FAILED))


@policy_group.command("impact")
@click.option("--base", default=None, help="Base revision (default: merge base with the PR's base or main).")
@click.option("--head", default="HEAD", show_default=True, help="Head revision (its policies/ are judged).")
@click.option("--now", "now", default=None, envvar="MLOPS_NOW", help="The time policies judge at (RFC 3339).")
@click.option(
    "--output",
    "-o",
    "fmt",
    type=click.Choice(["table", "json", "markdown"]),
    default="table",
    show_default=True,
)
@click.option("--fail-on-impact", is_flag=True, help="Exit 1 when something deployed is newly denied.")
@click.pass_context
def policy_impact(
    ctx: click.Context, base: str | None, head: str, now: str | None, fmt: str, fail_on_impact: bool
) -> None:
    """What a change to policies/ would deny among what is deployed now.

    When --head changes .rego files under policies/, every manifest on --base (and the
    promotion facts of every version deployed there, and every workflow) is judged by the
    policies at --base and by those at --head. Lists what is newly denied, newly allowed, or
    denied for other reasons. Prints nothing on stdout (markdown) when no policy changed.
    """
    from . import facts as gathering
    from . import impact
    from .registry import Registry

    repo = load_repo(_root(ctx))
    result = impact.assess(
        repo, Registry(repo), base or gathering.default_base(repo.root), head, gathering.now_rfc3339(now)
    )
    if fmt == "json":
        output.emit_json("PolicyImpact", result.to_dict())
    if not result.changed:
        output.stderr.print("no policy changed between base and head: no impact to assess", highlight=False)
        return
    if fmt == "markdown":
        sys.stdout.write(impact.to_markdown(result))
    elif fmt == "table":
        output.table(
            "impact of the policy change",
            ["impact", "deployment", "file", "what differs (+ new, - gone)"],
            [
                (i.status, i.subject, i.filename, impact.differences(i))
                for i in result.impacts
                if i.status != "unchanged"
            ],
        )
        for note in result.notes:
            output.stderr.print(f"note: {note}", highlight=False)
    counts = result.to_dict()["counts"]
    output.stderr.print(
        f"{len(result.changed)} policy file(s) changed; {counts['newly denied']} newly denied, "
        f"{counts['newly allowed']} newly allowed, {counts['changed']} changed, "
        f"{counts['unchanged']} unchanged",
        highlight=False,
    )
    if fail_on_impact and counts["newly denied"]:
        sys.exit(int(ExitCode.FAILED))


def _line_ranges(lines: list[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9"."""
    spans: list[list[int]] = []
    for line in lines:
        if spans and line == spans[-1][1] + 1:
            spans[-1][1] = line
        else:
            spans.append([line, line])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans) or "-"


if __name__ == "__main__":
    main()
