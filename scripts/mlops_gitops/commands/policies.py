"""`mlops check` and `mlops policy test|impact`: the Rego policies, in conftest's conventions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from ..core import output
from ..core.errors import ExitCode, MlopsError
from ..gate.policy import CHECK_FORMATS, TestRun
from . import options
from .app import main, root


@main.command()
@click.argument("files", nargs=-1)
@options.policy_dirs
@click.option(
    "--namespace", "-n", "namespaces", multiple=True, help="Namespace or glob (with FILES; default main)."
)
@click.option("--all-namespaces", is_flag=True, help="Evaluate every namespace (with FILES).")
@options.data_files(
    "YAML/JSON data, merged into data.*; a directory is loaded as OPA loads one (repeatable)."
)
@click.option(
    "--parser",
    type=click.Choice(["yaml", "json", "toml"]),
    default=None,
    help="Parse every FILE (and - for standard input) as this, whatever its extension.",
)
@click.option(
    "--output",
    "-o",
    "fmt",
    type=click.Choice(CHECK_FORMATS),
    default=None,
    help="stdout is conftest's lines (the default when not on a terminal); table on a terminal.",
)
@click.option("--no-color", is_flag=True, help="No colour (conftest's flag; NO_COLOR works too).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing when every test passes (as conftest).")
@click.option("--trace", is_flag=True, help="Print the evaluation step by step instead (embedded OPA).")
@click.option("--suppress-exceptions", is_flag=True, help="No EXCP lines (stdout, tap; still counted).")
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
    files: tuple[str, ...],
    policy_dirs: tuple[Path, ...],
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    data_files: tuple[Path, ...],
    parser: str | None,
    fmt: str | None,
    no_color: bool,
    quiet: bool,
    trace: bool,
    suppress_exceptions: bool,
    fail_on_warn: bool,
    no_fail: bool,
    record: bool,
) -> None:
    """Evaluate the Rego policies, with conftest's conventions and exit codes.

    Without FILES: every manifest (environments/*/*.yaml) against the `manifests`
    namespace and every workflow (.github/workflows/*.yml) against `workflows`. With
    FILES: those files (- for standard input) against --namespace (default main) or
    --all-namespaces, as `conftest test`. Uses the real conftest when it is on PATH, else
    the embedded OPA.
    """
    from ..gate import policy

    given = [name for name in files if name != ""]  # conftest ignores an empty argument
    missing = [name for name in given if name != "-" and not Path(name).is_file()]
    if missing:
        raise MlopsError(f"{missing[0]}: no such file (expected a file to test, or - for standard input)")
    if no_color:
        output.stdout.no_color = output.stderr.no_color = True
    fmt = fmt or ("table" if sys.stdout.isatty() else "stdout")
    try:
        where = root(ctx)
    except MlopsError:
        if not (given and policy_dirs):
            raise
        where = Path.cwd()  # FILES and --policy: usable anywhere, like conftest
    # --policy and --data are the caller's paths (relative to where it stands, as conftest takes
    # them, FILES too: policy.run reads those from here), whichever folder of the repository
    policy_dirs = tuple(p.absolute() for p in policy_dirs)
    data_files = tuple(p.absolute() for p in data_files)
    inputs = [Path(name) for name in given]
    run = policy.run(
        where, inputs, list(policy_dirs), namespaces, all_namespaces, list(data_files), parser, trace
    )
    fmt = "stdout" if trace else fmt
    shown = policy.shown(run.results, suppress_exceptions)
    if quiet and not any(f.kind != "exception" for r in run.results for f in r.findings):
        pass  # as conftest's --quiet: nothing to say when nothing failed or warned
    elif fmt == "table":
        rows = [(r.filename, r.namespace, f.kind.upper(), f.rule, f.msg) for r in shown for f in r.findings]
        if rows:
            output.table("policy findings", ["file", "namespace", "result", "rule", "message"], rows)
    else:
        sys.stdout.write(policy.render(shown, fmt, run.summary(engine=False)))
    if fmt not in ("stdout", "tap") and not quiet:  # (conftest's lines end with their own count)
        output.stderr.print(run.summary(), highlight=False)
    if record and given:  # after the verdict is out: a registry that fails cannot hide it
        from ..core.config import load_repo
        from ..gate.decisions import record_decisions
        from ..registry.client import Registry

        try:
            registry = Registry(load_repo(where))
            pairs = [(f.resolve(), str(f)) for f in inputs if str(f) != "-"]
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


def _tables(outcomes: list[tuple[str, str, bool]], report: Any) -> None:
    """The tests, and their coverage when measured, as tables."""
    from ..gate import policy

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


def _traces_and_prints(tests: list[TestRun], trace: bool) -> None:
    """Each test's trace on stdout (with --trace, as conftest verify --trace writes it) and its
    print() output on stderr (as opa test shows it)."""
    for test in tests:
        if trace:
            query = f"x := data.{test.package}.{test.name}"
            sys.stdout.write(f"file: {test.file.display} | query: {query}\n")
            sys.stdout.write("".join(f"TRAC   {line}\n" for line in test.steps))
        for printed in test.prints:
            print(printed, file=sys.stderr)


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
@click.option(
    "--namespace", "-n", "namespaces", multiple=True, help="Only the tests of these packages (globs)."
)
@options.data_files("YAML/JSON data the tests read under data.* (a directory as OPA loads one; repeatable).")
@click.option("--trace", is_flag=True, help="Print each test's evaluation step by step.")
@click.option(
    "--report",
    "report_mode",
    type=click.Choice(["fails", "notes", "full"]),
    default=None,
    help="Report as `opa test --verbose` (conftest verify --report): with failures' notes or steps.",
)
@click.argument("ignored", nargs=-1, metavar="[FILES]...")  # as conftest verify: taken, not read
@options.output_format(
    "table", "json", "tap", "junit", default=None, help="table (the default) for people; json, tap, junit."
)
@click.pass_context
def policy_test(
    ctx: click.Context,
    policy_dirs: tuple[Path, ...],
    coverage: bool,
    min_coverage: float | None,
    namespaces: tuple[str, ...],
    data_files: tuple[Path, ...],
    trace: bool,
    report_mode: str | None,
    ignored: tuple[str, ...],
    fmt: str | None,
) -> None:
    """Run every `test_*` rule in the *_test.rego files, like `conftest verify`.

    Exit 1 when a test fails, coverage is below --min-coverage, or a package of the
    repository's policies/ has no tests (with --policy, as conftest verify, such packages are
    listed, not failed). A policy that does not compile shows OPA's error with file and line.
    Outside a repository, --policy is required. FILES are taken and not read, as conftest
    verify takes them.
    """
    import fnmatch

    from ..gate import policy

    try:
        where = root(ctx)
    except MlopsError:
        if not policy_dirs:
            raise
        where = Path.cwd()  # --policy: usable anywhere, like conftest verify
    files = policy.load_policies(list(policy_dirs) or [where / "policies"], where)
    if report_mode is not None and fmt is not None:
        raise click.UsageError("report flag is supported with stdout only")
    report = policy.Coverage() if (coverage or min_coverage is not None) else None
    traced = trace or report_mode in ("notes", "full")
    tests = [
        t
        for t in policy.run_tests(files, policy.load_data(data_files), report, traced)
        if not namespaces or any(fnmatch.fnmatchcase(t.package, pattern) for pattern in namespaces)
    ]
    if report_mode is not None:
        sys.stdout.write(policy.report(tests, report_mode))
        sys.exit(int(ExitCode.FAILED) if any(not t.passed for t in tests) else 0)
    _traces_and_prints(tests, trace)
    fmt = fmt or "table"
    outcomes = sorted({(t.package, t.name, t.passed) for t in tests})
    failed = [f"{pkg}.{name}" for pkg, name, ok in outcomes if not ok]
    untested = policy.untested_packages(files, outcomes)
    if namespaces:
        untested = [p for p in untested if any(fnmatch.fnmatchcase(p, n) for n in namespaces)]
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
    elif fmt in ("junit", "tap"):
        sys.stdout.write(policy.tests_as(fmt, outcomes))
    else:
        _tables(outcomes, report)
        output.stderr.print(
            policy.counted(len(outcomes), "test")
            + f", {len(outcomes) - len(failed)} passed, 0 warnings, {policy.counted(len(failed), 'failure')}"
            + ", 0 exceptions"
            + (f"; packages without tests: {', '.join(untested)}" if untested else "")
            + (f"; coverage {report.percent()}%" if report is not None else "")
            + (f" (below --min-coverage {min_coverage}%)" if low else ""),
            highlight=False,
        )
    if failed or low or (untested and not policy_dirs):
        sys.exit(int(ExitCode.FAILED))
