"""`mlops check` and `mlops policy test|impact`: the Rego policies, in conftest's conventions."""

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


@main.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@options.policy_dirs
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
    help="YAML/JSON data, merged into data.*; a directory is loaded as OPA loads one (repeatable).",
)
@click.option(
    "--output",
    "-o",
    "fmt",
    type=click.Choice(["table", "json", "junit", "github", "sarif", "markdown"]),
    default="table",
    show_default=True,
)
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
    from ..gate import policy

    try:
        where = root(ctx)
    except MlopsError:
        if not (files and policy_dirs):
            raise
        where = Path.cwd()  # FILES and --policy: usable anywhere, like conftest
    # --policy and --data are the caller's paths (relative to where it stands, as conftest takes
    # them, FILES too: policy.run reads those from here), whichever folder of the repository
    policy_dirs = tuple(p.absolute() for p in policy_dirs)
    data_files = tuple(p.absolute() for p in data_files)
    run = policy.run(where, list(files), list(policy_dirs), namespaces, all_namespaces, list(data_files))
    if fmt == "table":
        rows = [
            (r.filename, r.namespace, f.kind.upper(), f.rule, f.msg) for r in run.results for f in r.findings
        ]
        if rows:
            output.table("policy findings", ["file", "namespace", "result", "rule", "message"], rows)
    else:
        sys.stdout.write(policy.render(run.results, fmt))
    output.stderr.print(run.summary(), highlight=False)
    if record and files:  # after the verdict is out: a registry that fails cannot hide it
        from ..core.config import load_repo
        from ..gate.decisions import record_decisions
        from ..registry.client import Registry

        try:
            registry = Registry(load_repo(where))
            pairs = [(f.resolve(), str(f)) for f in files]
            kept = record_decisions(registry, where, pairs, run.results, run.policy_files, run.engine)
        except MlopsError as exc:
            output.error(escape(f"decision not recorded: {exc}"))
            sys.exit(int(ExitCode.ERROR))
        for what in kept:
            output.stderr.print(f"decision recorded: {what}", highlight=False)
    sys.exit(policy.exit_code(run.results, fail_on_warn, no_fail))


@main.group("policy")
def policy_group() -> None:
    """The Rego policies in policies/: run their tests, see what a change to them would deny."""


@policy_group.command("test")
@options.policy_dirs
@click.option(
    "--coverage", is_flag=True, help="Report which policy lines the tests reached (as opa test --coverage)."
)
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    default=None,
    help="Fail when total coverage is below this percentage (implies --coverage).",
)
@options.output_format()
@click.pass_context
def policy_test(
    ctx: click.Context, policy_dirs: tuple[Path, ...], coverage: bool, min_coverage: float | None, fmt: str
) -> None:
    """Run every `test_*` rule in the *_test.rego files, like `conftest verify`.

    Exit 1 when a test fails, a policy package has no tests, or coverage is below
    --min-coverage. A policy that does not compile shows OPA's error with file and line.
    """
    from ..gate import policy

    where = root(ctx)
    files = policy.load_policies(list(policy_dirs) or [where / "policies"], where)
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
                    (
                        name,
                        str(f["covered_lines"]),
                        policy.line_ranges(f["not_covered_lines"]),
                        f"{f['coverage']}%",
                    )
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
@options.revisions
@options.output_format("table", "json", "markdown")
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
    from ..gate import facts as gathering
    from ..gate import impact
    from ..registry.client import Registry

    loaded = repo(ctx)
    result = impact.assess(
        loaded,
        Registry(loaded),
        base or gathering.default_base(loaded.root),
        head,
        gathering.now_rfc3339(now),
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
