"""conftest's own acceptance suite (its `acceptance.bats`), run by bats against `mlops check`: how
many of conftest's cases our runner passes, and which, by what it cannot parse or does not have.

    python -m tests.engine.peers.conftest_parity CONFTEST_CHECKOUT [--json OUT]

CONFTEST_CHECKOUT is a checkout of github.com/open-policy-agent/conftest (its examples and its
acceptance.bats, as they are; nothing of it is copied here). It is copied to a scratch folder,
where `./conftest` becomes a shim that runs `mlops check` for `conftest test`, `mlops policy test`
for `conftest verify` and `mlops` for anything else, with the arguments untouched; then the real
`bats` runs the file. Neither bats nor the checkout is on CI's machines: this is a measurement
taken by hand (the closing notes carry its figures), not a test.

A case is *comparable* when it needs nothing `mlops check` declares out of scope (README,
"Policies, and conftest"): inputs other than YAML, JSON and TOML (by extension, `--parser`, or a
combined multi-format run), `conftest parse`, `conftest pull`/`push`, plugins, or conftest's
configuration file. The rest are reported apart, never counted as passes or failures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SHIM = """#!/bin/sh
# conftest's name, our engine: the arguments are passed on untouched.
case "$1" in
  test) shift; exec {mlops} check "$@" ;;
  verify) shift; exec {mlops} policy test "$@" ;;
  *) exec {mlops} "$@" ;;
esac
"""
TEST = re.compile(r'^@test "(.*?)" \{\n(.*?)^\}', re.M | re.S)
PARSED = {"yaml", "yml", "json", "toml"}
OUT_OF_SCOPE = [
    (re.compile(r"conftest (parse|pull|push|plugin)\b"), "conftest parse/pull/push/plugin"),
    (re.compile(r"conftest -c |conftest\.toml|cd examples/configfile"), "conftest's configuration file"),
    (re.compile(r"--parser[ =](?!yaml\b|json\b|toml\b)\w+|--combine"), "a parser we do not have"),
    (re.compile(r"--update|--tls|oci://|git::|https?://"), "policies fetched from elsewhere"),
]


def scope(body: str) -> str:
    """Why a case is out of scope ("" when it is comparable)."""
    for pattern, why in OUT_OF_SCOPE:
        if pattern.search(body):
            return why
    for name in re.findall(r"examples/\S+\.(\w+)\b", body):
        if name.lower() not in PARSED and name not in ("rego",):
            return f"a .{name} input (no parser here)"
    if re.search(
        r"examples/(\S*(Dockerfile|Jenkinsfile|\.env\b|\.ini\b|\.tf\b|\.cue|\.xml|\.edn|\.vcl)|hcl|textproto)",
        body,
    ):
        return "an input format we do not parse"
    return ""


def run(checkout: Path) -> dict[str, object]:
    mlops = Path(sys.executable).parent / "mlops"
    cases = {name: body for name, body in TEST.findall((checkout / "acceptance.bats").read_text())}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / "conftest"
        shutil.copytree(checkout, work, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        shim = work / "conftest"
        shim.write_text(SHIM.format(mlops=mlops))
        shim.chmod(0o755)
        env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}  # conftest's lines are not wrapped
        proc = subprocess.run(
            ["bats", "--tap", "acceptance.bats"], cwd=work, env=env, capture_output=True, text=True
        )
    results = {}
    for line in proc.stdout.splitlines():
        found = re.match(r"^(ok|not ok) \d+ (.*?)(?: # skip.*)?$", line)
        if found:
            results[found.group(2)] = found.group(1) == "ok"
    rows = []
    for name, body in cases.items():
        rows.append({"case": name, "passed": results.get(name), "out_of_scope": scope(body)})
    comparable = [r for r in rows if not r["out_of_scope"]]
    return {
        "cases": len(rows),
        "comparable": len(comparable),
        "comparable_passed": sum(1 for r in comparable if r["passed"]),
        "out_of_scope_passed": sum(1 for r in rows if r["out_of_scope"] and r["passed"]),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkout", type=Path, help="a checkout of open-policy-agent/conftest")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args()
    if shutil.which("bats") is None:
        raise SystemExit("bats: not on PATH (expected the bats package: apt install bats)")
    if not (args.checkout / "acceptance.bats").is_file():
        raise SystemExit(f"{args.checkout}: no acceptance.bats (expected a conftest checkout)")
    summary = run(args.checkout)
    for row in summary["rows"]:  # type: ignore[attr-defined]
        mark = "pass" if row["passed"] else "FAIL"
        print(f"{mark:4}  {row['out_of_scope'] or 'comparable':38}  {row['case']}")
    print(
        f"\ncomparable: {summary['comparable_passed']} of {summary['comparable']} pass; "
        f"out of scope: {summary['cases'] - summary['comparable']} "
        f"({summary['out_of_scope_passed']} pass anyway)"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
