"""The policy runner: conftest's conventions on the real OPA engine, and the repo's policies."""

from __future__ import annotations

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT, copy_files, instance_files, run_mlops, tree_digest
from .conftest import FIXTURES

CONVENTIONS = FIXTURES / "policies" / "conventions"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return copy_files(instance_files(), ROOT, tmp_path / "repo")


def doc(tmp_path: Path, name: str, **fields: object) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(fields))
    return path


def check(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_mlops("check", "--policy", str(CONVENTIONS), *args, cwd=cwd)


def test_a_failing_policy_test_fails_the_run(checkout: Path) -> None:
    test_file = checkout / "policies/manifests/manifests_test.rego"
    test_file.write_text(test_file.read_text() + "\ntest_deny_always_wrong if {\n\t1 == 2\n}\n")
    proc = run_mlops("policy", "test", cwd=checkout)
    assert proc.returncode == 1
    assert re.search(r"manifests_test\s*│\s*test_deny_always_wrong\s*│\s*FAIL", proc.stdout), proc.stdout


def test_a_package_without_tests_fails_the_run(checkout: Path) -> None:
    (checkout / "policies/workflows/workflows_test.rego").unlink()
    proc = run_mlops("policy", "test", cwd=checkout)
    assert proc.returncode == 1
    assert "packages without tests: workflows" in proc.stderr
    # named with --policy, as `conftest verify` runs: listed, not failed (conftest counts tests)
    proc = run_mlops("policy", "test", "--policy", "policies", cwd=checkout)
    assert proc.returncode == 0 and "packages without tests: workflows" in proc.stderr


def test_a_policy_that_does_not_compile_names_file_and_line(checkout: Path) -> None:
    path = checkout / "policies/manifests/manifests.rego"
    path.write_text(path.read_text().replace("total != 100", "total != "))
    before = tree_digest(checkout)
    proc = run_mlops("check", cwd=checkout)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert re.match(r"error: policies/manifests/manifests\.rego:\d+: rego_\w+_error: ", line), line
    assert tree_digest(checkout) == before


def test_a_bad_manifest_and_a_bad_workflow_are_denied(checkout: Path) -> None:
    manifest = next((checkout / "environments/staging").glob("*.yaml"))
    manifest.write_text(manifest.read_text().replace("version: null", "version: latest"))
    workflow = checkout / ".github/workflows/pr.yml"
    workflow.write_text(re.sub(r"actions/checkout@[0-9a-f]{40}", "actions/checkout@v4", workflow.read_text()))
    proc = run_mlops("check", "--output", "github", cwd=checkout)
    assert proc.returncode == 1
    assert (
        f"::error file=environments/staging/{manifest.name},title=manifests.deny_unpinned_version::"
        in proc.stdout
    )
    assert "version latest is not pinned" in proc.stdout
    assert (
        'title=workflows.deny_unpinned_action::workflow "pr": job "lint" uses actions/checkout@v4'
        in proc.stdout
    )


def test_a_pull_request_job_on_an_undeclared_runner_label_must_refuse_forks(checkout: Path) -> None:
    """Only labels mlops.yaml declares GitHub-hosted (runners.hosted) count as hosted: a pull
    request's job on any other label (here a typo of ubuntu-latest) gets the fork guard, from
    `mlops check` and from the conftest way (`--data mlops.yaml`); declared, it passes."""
    workflow = checkout / ".github/workflows/pr.yml"
    text = workflow.read_text()
    assert text.count("runs-on: ubuntu-latest") >= 2
    workflow.write_text(text.replace("runs-on: ubuntu-latest", "runs-on: ubuntu-lastest", 1))
    proc = run_mlops("check", "--output", "json", cwd=checkout)
    assert proc.returncode == 1, proc.stderr
    (denied,) = [
        f["msg"] for r in json.loads(proc.stdout) for f in r.get("failures") or [] if "fork" in f["msg"]
    ]
    assert "runs on ubuntu-lastest, not declared GitHub-hosted in mlops.yaml (runners.hosted)" in denied
    as_conftest = [".github/workflows/pr.yml", "--policy", "policies/workflows", "--namespace", "workflows"]
    assert run_mlops("check", *as_conftest, "--data", "mlops.yaml", cwd=checkout).returncode == 1
    mlops_yaml = checkout / "mlops.yaml"
    mlops_yaml.write_text(
        mlops_yaml.read_text().replace("    - ubuntu-latest\n", "    - ubuntu-latest\n    - ubuntu-lastest\n")
    )
    assert run_mlops("check", cwd=checkout).returncode == 0
    assert run_mlops("check", *as_conftest, "--data", "mlops.yaml", cwd=checkout).returncode == 0
    without = run_mlops("check", *as_conftest, "-o", "json", cwd=checkout)  # no data: nothing is hosted
    assert without.returncode == 1 and "runs on ubuntu-latest, not declared" in without.stdout


def test_conftest_conventions(tmp_path: Path) -> None:
    bad = doc(tmp_path, "bad.yaml", kind="bad")
    proc = check(tmp_path, str(bad), "--output", "json")
    assert proc.returncode == 1
    (report,) = json.loads(proc.stdout)
    assert report["namespace"] == "main"
    assert sorted(f["msg"] for f in report["failures"]) == [
        "a violation with metadata",
        "plain deny",
        "suffixed deny, exempted below",
    ]
    assert [w["msg"] for w in report["warnings"]] == ["style of bad"]
    violation = next(f for f in report["failures"] if f["msg"] == "a violation with metadata")
    assert violation["metadata"]["code"] == "V1"
    # an exception exempts deny_foo by its suffix, and is counted apart
    exempt = doc(tmp_path, "exempt.yaml", kind="bad", exempt=True)
    (report,) = json.loads(check(tmp_path, str(exempt), "--output", "json").stdout)
    # as conftest reports it: the exception query that matched, the rule's failures dropped
    assert [e["msg"] for e in report["exceptions"]] == ['data.main.exception[_][_] == "foo"']
    assert "suffixed deny, exempted below" not in [f["msg"] for f in report["failures"]]


def test_exit_codes_follow_conftest(tmp_path: Path) -> None:
    good, meh, bad = (doc(tmp_path, f"{k}.yaml", kind=k) for k in ("good", "meh", "bad"))
    assert check(tmp_path, str(good)).returncode == 0
    assert check(tmp_path, str(meh)).returncode == 0
    assert check(tmp_path, str(bad)).returncode == 1
    assert check(tmp_path, str(good), "--fail-on-warn").returncode == 0
    assert check(tmp_path, str(meh), "--fail-on-warn").returncode == 1
    assert check(tmp_path, str(bad), "--fail-on-warn").returncode == 2
    assert check(tmp_path, str(bad), "--no-fail").returncode == 0


def test_check_speaks_conftest_s_command_line(tmp_path: Path) -> None:
    """What conftest's own acceptance suite asks of `conftest test`, on this fixture: its default
    lines when not on a terminal, standard input, an empty argument, --parser, TAP, --quiet and
    --suppress-exceptions (tests/engine/peers/conftest_parity.py runs that suite itself)."""
    bad, good = doc(tmp_path, "bad.yaml", kind="bad"), doc(tmp_path, "good.yaml", kind="good")
    lines = check(tmp_path, str(bad)).stdout.splitlines()  # not a terminal: conftest's lines
    assert lines[:4] == [
        f"WARN - {bad} - main - style of bad",
        f"FAIL - {bad} - main - plain deny",
        f"FAIL - {bad} - main - suffixed deny, exempted below",
        f"FAIL - {bad} - main - a violation with metadata",
    ]
    assert lines[4:] == ["", "5 tests, 1 passed, 1 warning, 3 failures, 0 exceptions"]
    # standard input (YAML unless --parser says), an empty argument ignored, a parser forced
    piped = run_mlops("check", "-p", str(CONVENTIONS), "-", "", cwd=tmp_path, input="kind: bad\n")
    assert piped.returncode == 1 and "FAIL - - main - plain deny" in piped.stdout
    as_json = run_mlops(
        "check", "-p", str(CONVENTIONS), "--parser", "json", "-", cwd=tmp_path, input='{"kind": "good"}'
    )
    assert as_json.returncode == 0 and as_json.stdout.endswith(
        "5 passed, 0 warnings, 0 failures, 0 exceptions\n"
    )
    (tmp_path / "settings.conf").write_text('kind = "bad"\n')
    assert check(tmp_path, "settings.conf", "--parser", "toml").returncode == 1
    missing = check(tmp_path, "nowhere.yaml")
    assert missing.returncode == 2 and "nowhere.yaml: no such file" in missing.stderr
    # TAP, as conftest writes it
    tap = check(tmp_path, str(bad), "-o", "tap").stdout.splitlines()
    assert tap[0] == "1..5" and tap[1] == f"not ok 1 - {bad} - main - plain deny"
    assert "# warnings" in tap and tap[-2:] == ["# successes", f"ok 5 - {bad} - main - SUCCESS"]
    # --quiet: nothing when all pass, the findings when not
    assert check(tmp_path, str(good), "--quiet").stdout == ""
    assert "FAIL" in check(tmp_path, str(bad), "--quiet").stdout
    # --suppress-exceptions: no EXCP line, still counted
    exempt = doc(tmp_path, "exempt.yaml", kind="bad", exempt=True)
    shown = check(tmp_path, str(exempt), "--no-color").stdout
    hidden = check(tmp_path, str(exempt), "--no-color", "--suppress-exceptions").stdout
    assert "EXCP" in shown and "EXCP" not in hidden
    assert shown.splitlines()[-1] == hidden.splitlines()[-1] and "1 exception" in hidden


def test_print_output_and_traces_are_shown_as_conftest_shows_them(tmp_path: Path) -> None:
    """Rego's print() output leads conftest's lines (PRNT, with the policy's file and line);
    --trace prints the evaluation step by step instead, for `check` and for `policy test`."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "main.rego").write_text(
        'package main\nimport rego.v1\n\nkind_is_bad if input.kind == "bad"\n\n'
        'deny contains msg if {\n\tprint(input.name)\n\tkind_is_bad\n\tmsg := "bad kind"\n}\n'
    )
    (policies / "main_test.rego").write_text(
        "package main_test\nimport rego.v1\nimport data.main\n"
        'test_bad if { main.kind_is_bad with input as {"kind": "bad"} }\n'
    )
    (tmp_path / "thing.yaml").write_text("kind: bad\nname: widget\n")
    shown = run_mlops("check", "-p", "policies", "thing.yaml", "--no-color", cwd=tmp_path)
    assert shown.returncode == 1
    assert shown.stdout.splitlines()[:2] == [
        "PRNT   policies/main.rego:7: widget",
        "FAIL - thing.yaml - main - bad kind",
    ]
    suppressed = run_mlops("check", "-p", "policies", "thing.yaml", "--suppress-exceptions", cwd=tmp_path)
    assert suppressed.stdout.startswith("PRNT   policies/main.rego:7: widget\n")  # only EXCP lines go
    traced = run_mlops("check", "-p", "policies", "thing.yaml", "--trace", cwd=tmp_path)
    assert traced.returncode == 1  # the verdict still decides the exit code
    lines = traced.stdout.splitlines()
    assert lines[0] == "file: thing.yaml | query: data.main"
    assert any(line.startswith("TRAC") and "data.main.kind_is_bad" in line for line in lines), lines
    verified = run_mlops("policy", "test", "-p", "policies", "--trace", cwd=tmp_path)
    assert verified.returncode == 0
    assert "query: x := data.main_test.test_bad" in verified.stdout and "TRAC   " in verified.stdout
    # --report, as `opa test --verbose` (conftest verify --report): a failing test with its note
    (policies / "more_test.rego").write_text(
        "package more_test\nimport rego.v1\nimport data.main\n"
        'test_wrong if {\n\ttrace("checking the good kind")\n'
        '\tmain.kind_is_bad with input as {"kind": "good"}\n}\n'
    )
    reported = run_mlops("policy", "test", "-p", "policies", "--report", "notes", cwd=tmp_path)
    assert reported.returncode == 1
    text = reported.stdout
    assert text.startswith("FAILURES\n") and "data.more_test.test_wrong: FAIL" in text
    assert 'Note "checking the good kind"' in text and "data.main_test.test_bad: PASS" in text
    assert text.rstrip().endswith("FAIL: 1/2")
    only = run_mlops("policy", "test", "-p", "policies", "--report", "fails", "-n", "main_*", cwd=tmp_path)
    assert only.returncode == 0 and only.stdout.rstrip().endswith("PASS: 1/1")  # --namespace holds
    assert "more_test" not in only.stdout
    refused = run_mlops("policy", "test", "-p", "policies", "--report", "fails", "-o", "json", cwd=tmp_path)
    assert refused.returncode == 2 and "report flag is supported with stdout only" in refused.stderr


def test_policy_test_speaks_conftest_verify_s_command_line(tmp_path: Path) -> None:
    """`mlops policy test` as `conftest verify`: anywhere with --policy, --namespace globs,
    --data for the tests, TAP; a package without tests is listed, not failed."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "main.rego").write_text(
        'package main\nimport rego.v1\ndeny contains msg if { input.kind == data.banned; msg := "banned" }\n'
    )
    (policies / "main_test.rego").write_text(
        "package main_test\nimport rego.v1\nimport data.main\n"
        'test_banned if { main.deny == {"banned"} with input as {"kind": "x"} }\n'
    )
    (policies / "team.rego").write_text('package team\nimport rego.v1\nwarn contains "w" if input.w\n')
    (tmp_path / "banned.yaml").write_text("banned: x\n")
    verify = ["policy", "test", "-p", str(policies)]
    passed = run_mlops(*verify, "-d", str(tmp_path / "banned.yaml"), cwd=tmp_path)  # not a repository
    assert passed.returncode == 0, passed.stderr
    assert (
        "1 test, 1 passed, 0 warnings, 0 failures" in passed.stderr and "without tests: team" in passed.stderr
    )
    without_data = run_mlops(*verify, cwd=tmp_path)
    assert without_data.returncode == 1 and "1 failure" in without_data.stderr
    none = run_mlops(*verify, "-d", str(tmp_path / "banned.yaml"), "--namespace", "nothing*", cwd=tmp_path)
    assert none.returncode == 0 and "0 tests, 0 passed" in none.stderr
    tap = run_mlops(*verify, "-d", str(tmp_path / "banned.yaml"), "-n", "main*", "-o", "tap", cwd=tmp_path)
    assert tap.stdout.splitlines() == ["1..1", "ok 1 - main_test.test_banned"]
    junit = run_mlops(*verify, "-n", "main*", "-o", "junit", cwd=tmp_path)  # no data: the test fails
    assert junit.returncode == 1
    suite = ET.fromstring(junit.stdout)
    assert (suite.get("tests"), suite.get("failures")) == ("1", "1")
    assert suite.find("testcase").get("name") == "data.main_test.test_banned"


def test_namespaces_select_packages(tmp_path: Path) -> None:
    bad = doc(tmp_path, "bad.yaml", kind="bad")
    only_extra = json.loads(check(tmp_path, str(bad), "-n", "team.*", "-o", "json").stdout)
    assert [(r["namespace"], [f["msg"] for f in r["failures"]]) for r in only_extra] == [
        ("team.extra", ["extra namespace denies"])
    ]
    every = json.loads(check(tmp_path, str(bad), "--all-namespaces", "-o", "json").stdout)
    assert sorted(r["namespace"] for r in every) == ["main", "team.extra"]


def test_from_a_subfolder_and_on_an_empty_file_as_conftest(checkout: Path) -> None:
    """FILES and --policy are the caller's paths, from whichever folder of the repository it
    stands in; an empty YAML file is one input (null) that the policies are tested against, as
    conftest reads it, not no input at all."""
    import subprocess

    subprocess.run(["git", "init", "--quiet"], cwd=checkout, check=True)
    staging = checkout / "environments" / "staging"
    manifest = sorted(staging.glob("*.yaml"))[0].name
    here = run_mlops("check", manifest, "-n", "manifests", "-o", "json", cwd=staging)
    assert here.returncode == 0, here.stderr
    assert [r["filename"] for r in json.loads(here.stdout)] == [manifest]
    whole = run_mlops("check", "-o", "json", cwd=staging)  # no FILES: the repository's, from its root
    assert whole.returncode == 0 and len(json.loads(whole.stdout)) > 1, whole.stderr
    (staging / "empty.yaml").write_text("# nothing here\n")
    empty = run_mlops(
        "check", "empty.yaml", "--policy", "../../policies", "-n", "manifests", "-o", "json", cwd=staging
    )
    (report,) = json.loads(empty.stdout)
    assert report["filename"] == "empty.yaml" and report["successes"] > 0, empty.stdout + empty.stderr


CONFTEST_BUILTINS = """package main

import rego.v1

deny contains msg if {
	cfg := parse_config("yaml", "a: 1\\nb: [2, 3]\\n")
	cfg.a != input.a
	msg := sprintf("a is %v, the inline config says %v", [input.a, cfg.a])
}

deny contains msg if {
	side := parse_config_file("side.toml")
	side.owner.name != input.owner
	msg := sprintf("owner %v, side.toml says %v", [input.owner, side.owner.name])
}

deny contains msg if {
	all := parse_combined_config_files(["side.toml", "two.yaml"])
	paths := [c.path | some c in all]
	msg := sprintf("combined %d: %v", [count(all), paths])
}
"""


def test_conftest_builtins_parse_inline_text_and_files_beside_the_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "main.rego").write_text(CONFTEST_BUILTINS)
    (policy / "side.toml").write_text('[owner]\nname = "risk"\n')
    (policy / "two.yaml").write_text("x: 1\n---\ny: 2\n")
    given = doc(tmp_path, "in.yaml", a=2, owner="risk")
    proc = run_mlops("check", str(given), "--policy", str(policy), "-o", "json", cwd=tmp_path)
    (report,) = json.loads(proc.stdout)
    assert sorted(f["msg"] for f in report["failures"]) == [
        "a is 2, the inline config says 1",
        'combined 3: ["side.toml", "two.yaml", "two.yaml"]',
    ], proc.stderr
    (policy / "side.toml").unlink()  # a file that is not there: the rule errs, named, never passes silently
    missing = run_mlops("check", str(given), "--policy", str(policy), cwd=tmp_path)
    assert missing.returncode != 0 and "side.toml" in missing.stdout + missing.stderr


def test_machine_formats(tmp_path: Path) -> None:
    bad = doc(tmp_path, "bad.yaml", kind="bad")
    junit = ET.fromstring(check(tmp_path, str(bad), "-o", "junit").stdout)
    assert junit.tag == "testsuite" and junit.get("failures") == "3"
    sarif = json.loads(check(tmp_path, str(bad), "-o", "sarif").stdout)
    assert sarif["version"] == "2.1.0"
    assert {r["level"] for r in sarif["runs"][0]["results"]} == {"error", "warning"}


def test_the_real_conftest_is_used_when_on_path(tmp_path: Path) -> None:
    """conftest itself cannot be installed here (no binary on any reachable registry): a stand-in
    on PATH answers with conftest's JSON and records its arguments, to test the adapter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    answer = [
        {
            "filename": "bad.yaml",
            "namespace": "main",
            "successes": 2,
            "failures": [{"msg": "from conftest", "metadata": {"query": "data.main.deny"}}],
        }
    ]
    (bin_dir / "conftest").write_text(f"#!/bin/sh\necho \"$@\" > {calls}\necho '{json.dumps(answer)}'\n")
    (bin_dir / "conftest").chmod(0o755)
    bad = doc(tmp_path, "bad.yaml", kind="bad")
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    proc = run_mlops(
        "check",
        "--policy",
        str(CONVENTIONS),
        str(bad),
        "-n",
        "main",
        "-o",
        "json",
        cwd=tmp_path,
        env_extra={"PATH": path},
    )
    assert proc.returncode == 1, proc.stderr
    assert "(conftest)" in proc.stderr
    assert json.loads(proc.stdout)[0]["failures"][0]["msg"] == "from conftest"
    args = calls.read_text().split()
    assert args[:4] == ["test", "--output", "json", "--no-fail"]
    assert (
        args[args.index("--policy") + 1] == str(CONVENTIONS) and args[args.index("--namespace") + 1] == "main"
    )


def test_markdown_for_the_pull_request_comment(tmp_path: Path) -> None:
    bad = doc(tmp_path, "bad.yaml", kind="bad")
    text = check(tmp_path, str(bad), "-o", "markdown").stdout
    assert text.startswith("### Policy gate: ❌ **denied**")
    assert f"| failure | `{bad}` | `main.deny` | plain deny |" in text
    good = doc(tmp_path, "good.yaml", kind="good")
    assert check(tmp_path, str(good), "-o", "markdown").stdout.startswith("### Policy gate: ✅ **allowed**")


# -- `mlops check` keeps its conftest claim (#15, class 7) ----------------------------------------
def test_tests_are_counted_as_conftest_counts_them(tmp_path: Path) -> None:
    """conftest counts a namespace's rule definitions (two bodies of `deny` are two tests), one
    success per rule with no result, and tops successes up to the number of definitions."""
    cases = {
        "good": (5, 5, 0, 0, 0),  # 5 definitions, nothing found
        "bad": (5, 1, 1, 3, 0),  # deny, deny_foo and violation fail; warn_style warns
        "twice": (5, 3, 1, 1, 0),  # the second body of deny fails
    }
    for kind, (tests, passed, warnings, failures, exceptions) in cases.items():
        path = doc(tmp_path, f"{kind}.yaml", kind=kind)
        proc = check(tmp_path, str(path), "-o", "json")
        (report,) = json.loads(proc.stdout)
        counts = [len(report.get(k) or []) for k in ("warnings", "failures", "exceptions")]
        assert [report["successes"], *counts] == [passed, warnings, failures, exceptions], kind
        words = [f"{n} {w}{'' if n == 1 else 's'}" for n, w in ((warnings, "warning"), (failures, "failure"))]
        assert proc.stderr.strip().endswith(
            f"{tests} tests, {passed} passed, {words[0]}, {words[1]}, {exceptions} exceptions (embedded OPA)"
        ), proc.stderr  # conftest's words: "1 warning", "3 failures"


def test_a_multi_document_file_is_several_inputs(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(
        "kind: good\n---\nkind: bad\n---\n# an empty document is not an input\n---\nkind: twice\n"
    )
    (report,) = json.loads(check(tmp_path, str(path), "-o", "json").stdout)
    assert report["filename"] == str(path)  # one file, its documents' results together
    assert sorted(f["msg"] for f in report["failures"]) == [
        "a violation with metadata",
        "plain deny",
        "second deny body",
        "suffixed deny, exempted below",
    ]
    assert report["successes"] == 5 + 1 + 3
    array = tmp_path / "all.json"
    array.write_text(json.dumps([{"kind": "good"}, {"kind": "twice"}]))  # conftest: a JSON array too
    (report,) = json.loads(check(tmp_path, str(array), "-o", "json").stdout)
    assert [f["msg"] for f in report["failures"]] == ["second deny body"]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("Dockerfile", "FROM python:3.11\n", "Dockerfile: no parser for this kind of file (expected .yaml"),
        ("main.tf", 'resource "x" "y" {}\n', "main.tf: no parser for this kind of file"),
        ("pom.xml", "<project/>\n", "pom.xml: no parser for this kind of file"),
        ("bad.json", '{"kind": "good",}\n', "bad.json: line 1, column 17: Expecting property name"),
        ("bad.toml", "kind = \n", "bad.toml: "),
        ("bad.yaml", "kind: [good\n", "bad.yaml: line 2, column 1: "),
    ],
)
def test_an_input_it_cannot_parse_is_an_error_naming_the_file(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    (tmp_path / name).write_text(text)
    proc = check(tmp_path, name)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"error: {expected}"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_toml_is_parsed_as_conftest_parses_it(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('kind = "bad"\n')
    (report,) = json.loads(check(tmp_path, "bad.toml", "-o", "json").stdout)
    assert "plain deny" in [f["msg"] for f in report["failures"]]


def test_a_rego_v0_rule_is_a_parse_error_not_ignored(tmp_path: Path) -> None:
    policies = tmp_path / "policy"
    policies.mkdir()
    (policies / "old.rego").write_text(
        'package main\n\nimport rego.v1\n\ndeny[msg] if {\n\tinput.kind == "bad"\n\tmsg := "never seen"\n}\n'
    )
    path = doc(tmp_path, "bad.yaml", kind="bad")
    proc = run_mlops("check", "--policy", str(policies), str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and ":5: rego_parse_error: `deny[...]` is Rego v0" in proc.stderr
    test = run_mlops("policy", "test", "--policy", str(policies), cwd=ROOT)
    assert test.returncode != 0 and "rego_parse_error" in test.stderr


def test_data_accepts_a_directory_as_opa_loads_it(tmp_path: Path) -> None:
    policies = tmp_path / "policy"
    policies.mkdir()
    (policies / "data.rego").write_text(
        "package main\n\nimport rego.v1\n\n"
        "deny contains msg if {\n\tnot input.kind in data.allowed\n"
        '\tmsg := sprintf("%s not allowed", [input.kind])\n}\n\n'
        'deny contains msg if {\n\tdata.limits.models.max < 2\n\tmsg := "limit from a nested folder"\n}\n'
    )
    data = tmp_path / "data"
    (data / "limits").mkdir(parents=True)
    (data / "allowed.yaml").write_text("allowed: [good]\n")
    (data / "limits" / "models.json").write_text(json.dumps({"models": {"max": 1}}))
    path = doc(tmp_path, "x.yaml", kind="other")
    proc = run_mlops(
        "check", "--policy", str(policies), "--data", str(data), str(path), "-o", "json", cwd=tmp_path
    )
    (report,) = json.loads(proc.stdout)
    assert sorted(f["msg"] for f in report["failures"]) == ["limit from a nested folder", "other not allowed"]


def test_policy_tests_outcomes_and_coverage_as_each_test_alone_gives_them(tmp_path: Path) -> None:
    """The runner evaluates every test through one prepared query and the coverage in one traced
    evaluation: each test's outcome, its print() output and the covered lines must be what a query
    of that test alone gives (the union of each test's lines, as `opa test --coverage` reports),
    over packages of two depths, a failing test and a rule no test reaches."""
    from mlops_gitops.gate import policy

    (tmp_path / "p.rego").write_text(
        'package main\n\ndeny contains msg if {\n\tinput.kind == "a"\n\tmsg := "kind a"\n}\n\n'
        'deny contains msg if {\n\tinput.kind == "b"\n\tmsg := "kind b"\n}\n\n'
        'deny contains msg if {\n\tinput.kind == "c"\n\tmsg := "kind c"\n}\n'
    )
    (tmp_path / "p_test.rego").write_text(
        "package main_test\n\nimport data.main\n\n"
        'test_a if {\n\tprint("checking a")\n\tmain.deny["kind a"] with input as {"kind": "a"}\n}\n\n'
        'test_fails if {\n\tmain.deny["nope"] with input as {"kind": "b"}\n}\n'
    )
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep/q.rego").write_text("package team.gate\n\nallow if input.ok == true\n")
    (tmp_path / "deep/q_test.rego").write_text(
        "package team.gate_test\n\nimport data.team.gate\n\n"
        'test_ok if {\n\tgate.allow with input as {"ok": true}\n}\n'
    )
    files = policy.load_policies([tmp_path])
    coverage = policy.Coverage()
    runs = policy.run_tests(files, coverage=coverage)
    outcomes = {(t.package, t.name): (t.passed, t.prints) for t in runs}
    assert {k: v[0] for k, v in outcomes.items()} == {
        ("main_test", "test_a"): True,
        ("main_test", "test_fails"): False,
        ("team.gate_test", "test_ok"): True,
    }
    assert [p.split(": ", 1)[1] for p in outcomes["main_test", "test_a"][1]] == ["checking a"]
    alone = policy.Coverage()
    with policy.EmbeddedOpa(files) as opa:
        for test in runs:
            opa.query(f"x := data.{test.package}.{test.name}", coverage=True)
            alone.add(opa.engine.last_coverage)
    assert coverage.files() == alone.files()
    main = next(v for k, v in coverage.files().items() if k.endswith("p.rego"))
    missed = set(main["not_covered_lines"])
    assert {14, 15} <= missed and not {4, 5, 9, 10} & missed  # only test_fails reaches `kind b`'s body
