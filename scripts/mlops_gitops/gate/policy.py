"""A conftest-compatible policy runner.

Same files, same semantics as `conftest test` / `conftest verify`: Rego v1 policies in a
directory, rules named `deny`, `violation` and `warn` (optionally suffixed, e.g.
`deny_unpinned_version`), returning strings or objects with `msg`; `exception` rules that
exempt suffixed rules by name ("" exempts the unsuffixed ones); namespaces selected by name
or glob; `test_*` rules run as tests. The engine is the real `conftest` binary when one is
on PATH, else OPA itself, embedded (opa-golib-python-bindings).

Exit codes as conftest: 1 on any failure; with fail_on_warn 0 clean, 1 warnings only,
2 failures.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.errors import MlopsError

RULE = re.compile(r"^(deny|violation|warn)(?:_([A-Za-z0-9_]+))?$")
PACKAGE = re.compile(r"^\s*package\s+([A-Za-z0-9_.]+)", re.MULTILINE)
# A rule definition conftest evaluates, at the start of a line: its head, then how it is defined.
RULE_HEAD = re.compile(
    r"^(?:deny|violation|warn)(?:_[A-Za-z0-9_]+)?(?=\s*(?:contains\b|if\b|\[|\{|:=|=(?!=)))", re.MULTILINE
)
# A builtin the runner adds to OPA: the rule paths a test query evaluates (EmbeddedOpa.rules).
TESTS_BUILTIN = "mlops_gitops.tests"
# Rego v0's partial set head (`deny[msg]`): in Rego v1 it defines an object, which conftest reads
# as no result at all, so every input would silently pass.
V0_SET_HEAD = re.compile(r"^((?:deny|violation|warn)(?:_[A-Za-z0-9_]+)?)\s*\[", re.MULTILINE)


class PolicyError(MlopsError):
    """A policy that does not compile or cannot be evaluated: OPA's message, file and line."""


@dataclass(frozen=True)
class Finding:
    kind: str  # failure | warning | exception
    rule: str  # e.g. deny_unpinned_version
    msg: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class FileResult:
    filename: str
    namespace: str
    successes: int = 0
    findings: list[Finding] = field(default_factory=list)
    prints: list[str] = field(default_factory=list)  # Rego print() output: "file.rego:LINE: message"
    traces: list[str] = field(default_factory=list)  # with --trace: the evaluation, step by step

    def of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]


@dataclass(frozen=True)
class PolicyFile:
    path: Path
    display: str
    package: str
    source: str

    @property
    def is_test(self) -> bool:
        return self.path.name.endswith("_test.rego")

    @property
    def rule_count(self) -> int:
        """How many deny/violation/warn definitions it has (two bodies of `deny` are two), as
        conftest counts the tests of a namespace."""
        return 0 if self.is_test else len(RULE_HEAD.findall(self.source))


def load_policies(paths: Sequence[Path], root: Path | None = None) -> list[PolicyFile]:
    files: list[PolicyFile] = []
    for base in paths:
        if not base.exists():
            raise MlopsError(f"{base}: no such policy directory (expected a directory of .rego files)")
        found = sorted(base.rglob("*.rego")) if base.is_dir() else [base]
        for path in found:
            source = path.read_text(encoding="utf-8")
            match = PACKAGE.search(source)
            display = path.relative_to(root).as_posix() if root and path.is_relative_to(root) else str(path)
            if not match:
                raise PolicyError(f"{display}:1: no package declaration (expected `package <name>`)")
            v0 = V0_SET_HEAD.search(source)
            if v0:
                line = source.count("\n", 0, v0.start()) + 1
                raise PolicyError(
                    f"{display}:{line}: rego_parse_error: `{v0.group(1)}[...]` is Rego v0's partial set "
                    f"(in Rego v1 it defines an object, which conftest ignores; expected "
                    f"`{v0.group(1)} contains msg if` and a body)"
                )
            files.append(PolicyFile(path, display, match.group(1), source))
    if not files:
        raise MlopsError(f"{', '.join(map(str, paths))}: no .rego files (expected policies)")
    return files


def select_namespaces(
    files: Iterable[PolicyFile], patterns: Sequence[str], all_namespaces: bool
) -> list[str]:
    """Namespaces to evaluate: all, or those matching the names/globs (conftest's default: main)."""
    packages = sorted({f.package for f in files if not f.is_test})
    if all_namespaces:
        return packages
    wanted = patterns or ["main"]
    return [p for p in packages if any(fnmatch.fnmatchcase(p, pattern) for pattern in wanted)]


def _message(value: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict) and isinstance(value.get("msg"), str):
        return value["msg"], {k: v for k, v in value.items() if k != "msg"}
    return json.dumps(value, sort_keys=True), {}


def _exception_matches(exceptions: Any, name: str) -> int:
    """How many ways `data.<ns>.exception[_][_] == name` holds: conftest's exception count."""
    count = 0
    for entry in exceptions or []:
        if isinstance(entry, list):
            count += sum(1 for item in entry if item == name)
    return count


def results_for(namespace: str, document: dict[str, Any], filename: str, rule_count: int = 0) -> FileResult:
    """Turn one evaluated package document into conftest's per-file result, counted as conftest
    counts: an exempted rule is its exceptions (its failures dropped), a rule with no result is
    one success, and definitions beyond the results found are successes too."""
    result = FileResult(filename, namespace)
    for rule, values in sorted(document.items()):
        match = RULE.match(rule)
        if not match or not isinstance(values, list | set):
            continue
        kind = "warning" if match.group(1) == "warn" else "failure"
        suffix = match.group(2) or ""
        exempted = _exception_matches(document.get("exception"), suffix) if kind == "failure" else 0
        if exempted:
            query = f'data.{namespace}.exception[_][_] == "{suffix}"'
            result.findings += [Finding("exception", rule, query)] * exempted
            continue
        if not values:
            result.successes += 1
        for value in sorted(values, key=lambda v: json.dumps(v, sort_keys=True)):
            msg, metadata = _message(value)
            result.findings.append(Finding(kind, rule, msg, metadata))
    counted = result.successes + len(result.findings)
    if counted < rule_count:
        result.successes += rule_count - counted
    return result


class ConftestBuiltins:
    """The builtins conftest adds to OPA, for policies written for conftest:

        parse_config(parser, text)             text parsed by the named parser (yaml, json, toml)
        parse_config_file(path)                a file parsed by its extension
        parse_combined_config_files(paths)     files parsed and combined as `conftest --combine`
                                               does: [{"path", "contents"}, ...]

    conftest resolves a path against the folder of the policy file that calls the builtin; OPA's
    Python binding does not say which policy calls, so a relative path is resolved against each
    policy file's folder and must name one file there (else an error saying which it found)."""

    def __init__(self, files: Sequence[PolicyFile]):
        self.folders = sorted({f.path.parent for f in files})

    def register(self, engine: Any) -> None:
        engine.register_function("parse_config", self.parse_config, arity=2)
        engine.register_function("parse_config_file", self.parse_config_file, arity=1)
        engine.register_function("parse_combined_config_files", self.parse_combined_config_files, arity=1)

    def parse_config(self, parser: str, text: str) -> Any:
        kind = {"yaml": "yaml", "yml": "yaml", "json": "json", "toml": "toml"}.get(str(parser).lower())
        if kind is None:
            raise ValueError(f"parse_config: parser {parser!r} (expected one of yaml, json, toml)")
        return _parse_text(text, kind, "parse_config")

    def _resolve(self, given: str) -> Path:
        path = Path(given)
        if path.is_absolute():
            return path
        found = sorted({(folder / path).resolve() for folder in self.folders if (folder / path).is_file()})
        if len(found) != 1:
            where = ", ".join(str(f) for f in found) or "none of the policy folders"
            raise ValueError(f"{given}: expected one file beside the policies, found {where}")
        return found[0]

    def parse_config_file(self, given: str) -> Any:
        path = self._resolve(given)
        return parse_input(path, given)

    def parse_combined_config_files(self, paths: list[str]) -> list[dict[str, Any]]:
        combined: list[dict[str, Any]] = []
        for given in paths:
            parsed = self.parse_config_file(given)
            for document in parsed if isinstance(parsed, list) else [parsed]:
                combined.append({"path": given, "contents": document})
        return combined


class EmbeddedOpa:
    """OPA itself (the Go library), loaded with every policy file once."""

    def __init__(self, files: Sequence[PolicyFile], data: dict[str, Any] | None = None):
        try:
            from opa_bindings.engine import OpaEngine, OpaError
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise MlopsError(
                f"the embedded OPA engine is not installed ({exc}); run `make install`"
            ) from None
        self._error = OpaError
        self.engine = OpaEngine()
        self.prints: list[str] = []  # print() output of the evaluations since it was last emptied
        self.engine.print_handler = lambda message, where: self.prints.append(f"{where}: {message}")
        # The test rules a query names through TESTS_BUILTIN (see `rules`): OPA prepares each
        # distinct query string once, compiling every module again (tens of milliseconds), so one
        # query per test, with its name in the string, cost a compile per test.
        self.tests: list[list[str]] = []
        try:
            self.engine.register_function(TESTS_BUILTIN, lambda: self.tests, arity=0)
            ConftestBuiltins(files).register(self.engine)
            for policy in files:
                self.engine.add_policy(policy.display, policy.source)
            if data:
                self.engine.add_data(data)
            self.engine.eval_query("x := 1")  # compiles everything now: errors name file and line
        except OpaError as exc:
            self.close()
            raise PolicyError(_opa_message(exc)) from None

    def query(
        self, query: str, input: Any = None, coverage: bool = False, trace: bool = False
    ) -> list[dict[str, Any]]:
        try:
            result: list[dict[str, Any]] = self.engine.eval_query(
                query, input=input, coverage=coverage, trace=trace
            )
            return result
        except self._error as exc:
            raise PolicyError(_opa_message(exc)) from None

    def rules(self, paths: Sequence[list[str]], coverage: bool = False) -> list[Any]:
        """The values of the rules at `paths` (each a package's names, then the rule's), in order;
        an undefined one is left out. The query's text depends only on the paths' length, so OPA
        prepares it once, whatever rules it names. Input stays undefined, as in `opa test`."""
        depths = {len(path) for path in paths}
        if len(depths) != 1:
            raise ValueError(f"rule paths of one length expected, got lengths {sorted(depths)}")
        self.tests = [list(path) for path in paths]
        ref = "".join(f"[t[{i}]]" for i in range(depths.pop()))
        rows = self.query(f"x := [v | t := {TESTS_BUILTIN}()[_]; v := data{ref}]", coverage=coverage)
        found: list[Any] = rows[0]["x"] if rows else []
        return found

    def package(self, namespace: str, input: Any, trace: bool = False) -> dict[str, Any]:
        rows = self.query(f"x := data.{namespace}", input, trace=trace)
        return rows[0]["x"] if rows and isinstance(rows[0].get("x"), dict) else {}

    def trace(self, notes_only: bool = False) -> list[str]:
        """The last traced evaluation as lines, each step indented by how deep its query is (as
        OPA's pretty trace): `Enter data.main.deny = _`, `| Eval ...`, `| Note "..."` for Rego's
        trace() calls (the only ones, with `notes_only`)."""
        depth: dict[int, int] = {}
        lines = []
        for event in self.engine.last_trace or []:
            query, parent = int(event.get("query_id", 0)), int(event.get("parent_id", 0))
            depth.setdefault(query, 0 if query == parent else depth.get(parent, 0) + 1)
            note = event.get("op") == "Note"
            if note or not notes_only:
                said = json.dumps(event.get("message")) if note else event.get("node")
                lines.append(f"{'| ' * depth[query]}{event.get('op')} {said}")
        return lines

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> EmbeddedOpa:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _opa_message(exc: Exception) -> str:
    """OPA's first located error (`file.rego:LINE: rego_..._error: ...`), and how many there are."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    located = [m.group(1) for line in lines if (m := re.search(r"(\S+\.rego:\d+: .*)", line))]
    if not located:
        return lines[0] if lines else "OPA error"
    more = f" (and {len(located) - 1} more)" if len(located) > 1 else ""
    return located[0] + more


def evaluate(
    files: Sequence[PolicyFile],
    inputs: Sequence[tuple[str, Any]],
    namespaces: Sequence[str],
    data: dict[str, Any] | None = None,
    trace: bool = False,
) -> list[FileResult]:
    """Every namespace over every input: conftest test semantics. An input that is a list (a
    multi-document YAML file, a JSON array) is several inputs, their results under one file."""
    results = []
    rules = {ns: sum(f.rule_count for f in files if f.package == ns) for ns in namespaces}
    with EmbeddedOpa([f for f in files if not f.is_test], data) as opa:
        for filename, document in inputs:
            for namespace in namespaces:
                merged = FileResult(filename, namespace)
                for part in document if isinstance(document, list) else [document]:
                    opa.prints.clear()
                    found = opa.package(namespace, part, trace)
                    one = results_for(namespace, found, filename, rules[namespace])
                    merged.successes += one.successes
                    merged.findings += one.findings
                    merged.prints += opa.prints
                    merged.traces += opa.trace() if trace else []
                results.append(merged)
    return results


def exit_code(results: Sequence[FileResult], fail_on_warn: bool = False, no_fail: bool = False) -> int:
    failures = any(r.of("failure") for r in results)
    warnings = any(r.of("warning") for r in results)
    if no_fail:
        return 0
    if fail_on_warn:
        return 2 if failures else (1 if warnings else 0)
    return 1 if failures else 0


@dataclass
class Coverage:
    """Lines of the policies (not their tests) that the tests evaluated, like `opa test --coverage`."""

    covered: dict[str, set[int]] = field(default_factory=dict)
    not_covered: dict[str, set[int]] = field(default_factory=dict)

    def add(self, report: dict[str, Any] | None) -> None:
        for name, entry in ((report or {}).get("files") or {}).items():
            for key, target in (("covered", self.covered), ("not_covered", self.not_covered)):
                lines = target.setdefault(name, set())
                for span in entry.get(key) or []:
                    lines.update(range(span["start"]["row"], span["end"]["row"] + 1))

    def files(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name in sorted(set(self.covered) | set(self.not_covered)):
            if name.endswith("_test.rego"):
                continue
            covered = self.covered.get(name, set())
            missing = self.not_covered.get(name, set()) - covered
            total = len(covered) + len(missing)
            out[name] = {
                "covered_lines": len(covered),
                "not_covered_lines": sorted(missing),
                "coverage": round(100.0 * len(covered) / total, 1) if total else 100.0,
            }
        return out

    def percent(self) -> float:
        files = self.files().values()
        covered = sum(f["covered_lines"] for f in files)
        total = covered + sum(len(f["not_covered_lines"]) for f in files)
        return round(100.0 * covered / total, 1) if total else 100.0


@dataclass(frozen=True)
class TestRun:
    """One `test_*` rule evaluated: where it is, whether it passed, what it printed, and (when
    traced) its steps and its trace() notes."""

    __test__ = False  # not a pytest class, whatever its name

    file: PolicyFile
    name: str
    passed: bool
    prints: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def package(self) -> str:
        return self.file.package


def run_tests(
    files: Sequence[PolicyFile],
    data: dict[str, Any] | None = None,
    coverage: Coverage | None = None,
    trace: bool = False,
) -> list[TestRun]:
    """Every `test_*` rule of the *_test.rego files, evaluated once each, like `conftest verify`.
    With `coverage`, the lines each test reached are added to it; with `trace`, each test's
    evaluation is kept, step by step."""
    done = []
    tests = [
        (policy, name, [*policy.package.split("."), name])
        for policy in files
        if policy.is_test
        for name in re.findall(r"^(test_[A-Za-z0-9_]+)\b", policy.source, re.MULTILINE)
    ]
    with EmbeddedOpa(files, data) as opa:
        for policy, name, path in tests:
            opa.prints.clear()
            if trace:  # the test's own query, so that its trace starts at the test, as opa's does
                rows = opa.query(f"x := data.{policy.package}.{name}", trace=True)
                found = [row["x"] for row in rows[:1] if "x" in row]
            else:
                found = opa.rules([path])
            steps, notes = (opa.trace(), opa.trace(notes_only=True)) if trace else ([], [])
            done.append(TestRun(policy, name, found == [True], tuple(opa.prints), tuple(steps), tuple(notes)))
        if coverage is not None:
            # every test again in one traced evaluation per package depth: the lines it reaches
            # are the union of each test's, without a coverage report built per test (each test
            # is still evaluated alone above, for its own print() output)
            paths = [path for _, _, path in tests]
            for depth in sorted({len(path) for path in paths}):
                opa.rules([path for path in paths if len(path) == depth], coverage=True)
                coverage.add(opa.engine.last_coverage)
    return done


def verify(
    files: Sequence[PolicyFile], data: dict[str, Any] | None = None, coverage: Coverage | None = None
) -> list[tuple[str, str, bool]]:
    """(package, rule, passed) of every test, as `conftest verify` counts them."""
    return sorted({(t.package, t.name, t.passed) for t in run_tests(files, data, coverage)})


def untested_packages(files: Sequence[PolicyFile], outcomes: Iterable[tuple[str, str, bool]]) -> list[str]:
    """The policy packages no test package (`<package>_test`) tests."""
    tested = {package.removesuffix("_test") for package, _, _ in outcomes}
    return sorted({f.package for f in files if not f.is_test} - tested)


SEPARATOR = "-" * 80  # opa test --verbose's


def report(tests: Sequence[TestRun], mode: str) -> str:
    """The tests as `opa test --verbose` reports them (conftest verify --report): each test PASS
    or FAIL under its file with its print() output, the failures again with their trace
    (`notes`: its trace() notes only; `full`: every step; `fails`: none), and PASS: n/n or
    FAIL: failed/n. The tests must have been run traced for `notes` and `full`."""
    lines: list[str] = []
    failed = [t for t in tests if not t.passed]
    if failed:
        lines += ["FAILURES", SEPARATOR]
        for test in failed:
            steps = {"full": test.steps, "notes": test.notes}.get(mode, ())
            lines += [f"data.{test.package}.{test.name}: FAIL", "", *(f"  {s}" for s in steps), ""]
        lines += ["SUMMARY", SEPARATOR]
    last = None
    for test in tests:
        if test.file.display != last:
            lines += ([""] if last else []) + [f"{test.file.display}:"]
            last = test.file.display
        lines.append(f"data.{test.package}.{test.name}: {'PASS' if test.passed else 'FAIL'}")
        lines += [f"  {printed}" for printed in test.prints]
    lines.append(SEPARATOR)
    lines.append(f"FAIL: {len(failed)}/{len(tests)}" if failed else f"PASS: {len(tests)}/{len(tests)}")
    return "\n".join(lines) + "\n"


def conftest_test(
    binary: str,
    policy_dirs: Sequence[Path],
    files: Sequence[str],
    namespaces: Sequence[str],
    all_namespaces: bool,
    data_files: Sequence[Path],
    parser: str | None = None,
) -> list[FileResult]:
    """The real conftest, when one is installed: same files, its JSON result mapped to ours."""
    import subprocess

    cmd = [binary, "test", "--output", "json", "--no-fail", *(["--parser", parser] if parser else [])]
    for directory in policy_dirs:
        cmd += ["--policy", str(directory)]
    for data_file in data_files:
        cmd += ["--data", str(data_file)]
    cmd += (
        ["--all-namespaces"] if all_namespaces else [arg for ns in namespaces for arg in ("--namespace", ns)]
    )
    stdin = sys.stdin.read() if "-" in files else None
    proc = subprocess.run([*cmd, *files], capture_output=True, text=True, input=stdin)
    try:
        reports = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise PolicyError(f"conftest: {(proc.stderr or proc.stdout).strip().splitlines()[0]}") from None
    results = []
    for report in reports:
        result = FileResult(report["filename"], report.get("namespace", ""), int(report.get("successes", 0)))
        for key, kind in (("failures", "failure"), ("warnings", "warning"), ("exceptions", "exception")):
            for item in report.get(key) or []:
                meta = dict(item.get("metadata") or {})
                result.findings.append(
                    Finding(kind, str(meta.pop("query", "")).split(".")[-1], item["msg"], meta)
                )
        results.append(result)
    return results


def to_conftest_json(results: Sequence[FileResult]) -> list[dict[str, Any]]:
    return [
        {
            "filename": r.filename,
            "namespace": r.namespace,
            "successes": r.successes,
            **{
                key: [{"msg": f.msg, "metadata": {"rule": f.rule, **f.metadata}} for f in r.of(kind)]
                for key, kind in (
                    ("failures", "failure"),
                    ("warnings", "warning"),
                    ("exceptions", "exception"),
                )
            },
        }
        for r in results
    ]


def to_github(results: Sequence[FileResult]) -> str:
    """Workflow commands: annotations on the files in a pull request."""
    lines = []
    for r in results:
        for f in r.findings:
            level = {"failure": "error", "warning": "warning", "exception": "notice"}[f.kind]
            text = f.msg.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            lines.append(f"::{level} file={r.filename},title={r.namespace}.{f.rule}::{text}")
    return "\n".join(lines)


def to_junit(results: Sequence[FileResult]) -> str:
    from xml.sax.saxutils import quoteattr

    cases = []
    for r in results:
        for f in r.findings:
            body = (
                f"<failure message={quoteattr(f.msg)}/>"
                if f.kind == "failure"
                else f"<skipped message={quoteattr(f.kind + ': ' + f.msg)}/>"
            )
            cases.append(
                f"  <testcase classname={quoteattr(r.namespace)} "
                f"name={quoteattr(r.filename + ': ' + f.rule)}>{body}</testcase>"
            )
        if not r.findings:
            cases.append(f"  <testcase classname={quoteattr(r.namespace)} name={quoteattr(r.filename)}/>")
    failures = sum(len(r.of("failure")) for r in results)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="mlops check" tests="{len(cases)}" '
        f'failures="{failures}">\n' + "\n".join(cases) + "\n</testsuite>\n"
    )


def tests_as(fmt: str, outcomes: Sequence[tuple[str, str, bool]]) -> str:
    """`policy test`'s outcomes (package, test, passed) as TAP or JUnit, as conftest verify writes
    them: one line, or one test case, per test."""
    if fmt == "tap":
        lines = [f"1..{len(outcomes)}"] + [
            f"{'ok' if ok else 'not ok'} {i} - {p}.{n}" for i, (p, n, ok) in enumerate(outcomes, 1)
        ]
        return "".join(line + "\n" for line in lines)
    cases = [
        f'  <testcase classname="{p}" name="data.{p}.{n}">'
        + ("" if ok else '<failure message="the test failed"/>')
        + "</testcase>"
        for p, n, ok in outcomes  # package and rule names: Rego identifiers, nothing to escape
    ]
    failed = sum(1 for *_, ok in outcomes if not ok)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="mlops policy test" '
        f'tests="{len(cases)}" failures="{failed}">\n' + "".join(c + "\n" for c in cases) + "</testsuite>\n"
    )


def to_sarif(results: Sequence[FileResult]) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    found = []
    for r in results:
        for f in r.findings:
            rule_id = f"{r.namespace}.{f.rule}"
            rules.setdefault(
                rule_id, {"id": rule_id, "shortDescription": {"text": f.metadata.get("title", rule_id)}}
            )
            found.append(
                {
                    "ruleId": rule_id,
                    "level": {"failure": "error", "warning": "warning"}.get(f.kind, "note"),
                    "message": {"text": f.msg},
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": r.filename}}}],
                }
            )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {"tool": {"driver": {"name": "mlops check", "rules": list(rules.values())}}, "results": found}
        ],
    }


def to_markdown(results: Sequence[FileResult], title: str = "Policy gate") -> str:
    """A pull-request comment: the verdict, then every finding with its file and rule."""
    failures = sum(len(r.of("failure")) for r in results)
    warnings = sum(len(r.of("warning")) for r in results)
    verdict = (
        "❌ **denied**" if failures else ("⚠️ **allowed with warnings**" if warnings else "✅ **allowed**")
    )
    lines = [
        f"### {title}: {verdict}",
        "",
        f"{len(results)} document(s) checked: {failures} failure(s), {warnings} warning(s), "
        f"{sum(len(r.of('exception')) for r in results)} exception(s).",
        "",
    ]
    findings = [(r, f) for r in results for f in r.findings]
    if findings:
        lines += ["| result | file | rule | message |", "| --- | --- | --- | --- |"]
        for r, f in findings:
            msg = f.msg.replace("|", "\\|")
            lines.append(f"| {f.kind} | `{r.filename}` | `{r.namespace}.{f.rule}` | {msg} |")
        lines.append("")
    return "\n".join(lines)


def counted(number: int, word: str) -> str:
    """ "1 test", "2 tests": conftest's counts."""
    return f"{number} {word}{'' if number == 1 else 's'}"


@dataclass
class Run:
    """What `mlops check` evaluated: the per-file results, the engine, the policy files."""

    results: list[FileResult]
    engine: str  # conftest | embedded OPA
    policy_files: list[PolicyFile]

    def counts(self) -> dict[str, int]:
        return {k: sum(len(r.of(k)) for r in self.results) for k in ("failure", "warning", "exception")}

    def summary(self, engine: bool = True) -> str:
        """conftest's closing line, word for word: tests, passed, warnings, failures, exceptions
        (then, unless asked not to, the engine)."""
        counts = self.counts()
        tests = sum(r.successes + len(r.findings) for r in self.results)
        line = (
            f"{counted(tests, 'test')}, {tests - sum(counts.values())} passed, "
            f"{counted(counts['warning'], 'warning')}, {counted(counts['failure'], 'failure')}, "
            f"{counted(counts['exception'], 'exception')}"
        )
        return f"{line} ({self.engine})" if engine else line


CHECK_FORMATS = ("stdout", "table", "json", "tap", "junit", "github", "sarif", "markdown")


def run(
    root: Path,
    files: Sequence[Path],
    policy_dirs: Sequence[Path] = (),
    namespaces: Sequence[str] = (),
    all_namespaces: bool = False,
    data_files: Sequence[Path] = (),
    parser: str | None = None,
    trace: bool = False,
) -> Run:
    """`conftest test`, with the real conftest when it is on PATH, else OPA embedded.

    With `files`: those, against `namespaces` (default main) or all. Without: every manifest
    (environments/*/*.yaml) against `manifests` and every workflow against `workflows`, with
    mlops.yaml as data (the workflows policy reads its runners.hosted). YAML is read as conftest
    reads it (YAML 1.2 booleans); `data_files` merge into data.*. A file named "-" is standard
    input; `parser` (yaml, json or toml) overrides the one chosen by extension.
    """
    import shutil

    dirs = list(policy_dirs) or [root / "policies"]
    if not files and (root / "mlops.yaml").is_file():  # as `conftest test --data mlops.yaml`: runners.hosted
        data_files = [root / "mlops.yaml", *data_files]
    data = load_data(data_files)
    if files:
        groups = [([str(f) for f in files], list(namespaces), all_namespaces)]
    else:
        manifests = sorted(str(p.relative_to(root)) for p in (root / "environments").glob("*/*.yaml"))
        workflows = sorted(str(p.relative_to(root)) for p in (root / ".github/workflows").glob("*.y*ml"))
        groups = [(manifests, ["manifests"], False), (workflows, ["workflows"], False)]
    binary = shutil.which("conftest")
    policy_files = load_policies(dirs, root)
    results: list[FileResult] = []
    for names, wanted, every in groups:
        if binary:
            results += conftest_test(binary, dirs, names, wanted, every, list(data_files), parser)
            continue
        # FILES as given, from where the caller stands; the repository's own, from its root
        base = Path.cwd() if files else root
        inputs = [(name, read_input(base, name, parser)) for name in names]
        results += evaluate(policy_files, inputs, select_namespaces(policy_files, wanted, every), data, trace)
    return Run(results, "conftest" if binary else "embedded OPA", policy_files)


PARSERS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}


def read_input(base: Path, name: str, parser: str | None = None) -> Any:
    """One input as conftest reads it: "-" is standard input (YAML unless `parser` says
    otherwise), anything else a file from `base`."""
    if name == "-":
        return _parse_text(sys.stdin.read(), parser or "yaml", "-")
    return parse_input(base / name, name, parser)


def parse_input(path: Path, display: str, parser: str | None = None) -> Any:
    """One input file, parsed by `parser` or else by its extension, as conftest chooses its
    parser: YAML (every document of a multi-document file: a list, which is several inputs),
    JSON or TOML. Any other kind is an error naming the file, never a silent pass."""

    kind = parser or PARSERS.get(path.suffix.lower())
    if kind is None:
        raise MlopsError(
            f"{display}: no parser for this kind of file (expected .yaml, .yml, .json or .toml; "
            "conftest parses more kinds, such as Dockerfile, HCL or XML: run `conftest test` on it)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MlopsError(f"{display}: not UTF-8 text (expected a {kind.upper()} file)") from None
    return _parse_text(text, kind, display)


def _parse_text(text: str, kind: str, display: str) -> Any:
    """YAML (every document: a list when several), JSON or TOML text, as conftest parses it."""
    import tomllib

    from ..core import yamlio

    try:
        if kind == "json":
            return json.loads(text)
        if kind == "toml":
            return tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise MlopsError(
            f"{display}: line {exc.lineno}, column {exc.colno}: {exc.msg} (expected JSON)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise MlopsError(f"{display}: {exc} (expected TOML)") from None
    documents = [d for d in yamlio.loads_data_all(text, display) if d is not None]
    if not documents:
        return None  # an empty file is one input, null, as conftest reads it (not no input)
    return documents[0] if len(documents) == 1 else documents


DATA_SUFFIXES = (".yaml", ".yml", ".json")


def load_data(paths: Sequence[Path]) -> dict[str, Any]:
    """--data: files merged at data's root, and directories as OPA loads them: each YAML or JSON
    file under one is merged at the path of its folder (dir/a/b.yaml under data.a)."""
    data: dict[str, Any] = {}
    for given in paths:
        found = (
            sorted(
                p for p in given.rglob("*") if p.is_file() and p.suffix.lower() in (".yaml", ".yml", ".json")
            )
            if given.is_dir()
            else [given]
        )
        for path in found:
            loaded = parse_input(path, str(path))
            if not isinstance(loaded, dict):
                raise MlopsError(f"{path}: got {type(loaded).__name__} (expected a mapping of data)")
            where = data
            if given.is_dir():
                for part in path.parent.relative_to(given).parts:
                    where = where.setdefault(part, {})
            _merge(where, loaded)
    return data


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def shown(results: Sequence[FileResult], suppress_exceptions: bool = False) -> list[FileResult]:
    """The results to print: all, or without their exceptions (conftest's --suppress-exceptions:
    they still count)."""
    if not suppress_exceptions:
        return list(results)
    return [replace(r, findings=[f for f in r.findings if f.kind != "exception"]) for r in results]


def _where(result: FileResult) -> str:
    return "-" if result.filename == "-" else f"- {result.filename}"


def to_standard(results: Sequence[FileResult], summary: str) -> str:
    """conftest's default output, line for line: the policies' print() output (PRNT lines), WARN,
    FAIL and EXCP lines (`KIND - file - ns - message`, "-" for standard input), a blank line, and
    the closing count."""
    if any(result.traces for result in results):  # as conftest --trace: the trace, not the findings
        return "".join(
            f"file: {r.filename} | query: data.{r.namespace}\n" + "".join(f"TRAC   {t}\n" for t in r.traces)
            for r in results
        )
    lines = [f"PRNT   {printed}" for result in results for printed in result.prints]
    for result in results:
        for kind, word in (("warning", "WARN"), ("failure", "FAIL"), ("exception", "EXCP")):
            lines += [f"{word} {_where(result)} - {result.namespace} - {f.msg}" for f in result.of(kind)]
    return "\n".join([*lines, "", summary]) + "\n"


def to_tap(results: Sequence[FileResult]) -> str:
    """conftest's TAP output: per file, its plan, then failures (not ok), warnings (not ok),
    exceptions (ok) and successes (ok), each group after its comment."""
    lines = []
    for result in results:
        total = result.successes + len(result.findings)
        if not total:
            continue
        lines.append(f"1..{total}")
        counter = 0
        groups = [("", "not ok", result.of("failure")), ("# warnings", "not ok", result.of("warning"))]
        groups.append(("# exceptions", "ok", result.of("exception")))
        groups.append(("# successes", "ok", [Finding("success", "", "SUCCESS")] * result.successes))
        for comment, status, findings in groups:
            if findings and comment:
                lines.append(comment)
            for finding in findings:
                counter += 1
                lines.append(f"{status} {counter} {_where(result)} - {result.namespace} - {finding.msg}")
    return "".join(line + "\n" for line in lines)


def render(results: Sequence[FileResult], fmt: str, summary: str = "") -> str:
    """The results in one of conftest's formats (or markdown, for a pull request); `summary` is
    the closing count conftest's default output ends with."""
    if fmt == "stdout":
        return to_standard(results, summary)
    if fmt == "tap":
        return to_tap(results)
    if fmt == "json":
        return json.dumps(to_conftest_json(results), indent=2) + "\n"
    if fmt == "github":
        return to_github(results) + "\n"
    if fmt == "junit":
        return to_junit(results)
    if fmt == "sarif":
        return json.dumps(to_sarif(results), indent=2) + "\n"
    if fmt == "markdown":
        return to_markdown(results) + "\n"
    raise ValueError(fmt)


def line_ranges(lines: Sequence[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9" (uncovered policy lines)."""
    spans: list[list[int]] = []
    for line in lines:
        if spans and line == spans[-1][1] + 1:
            spans[-1][1] = line
        else:
            spans.append([line, line])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans) or "-"
