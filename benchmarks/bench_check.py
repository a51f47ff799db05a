"""`mlops check` over 1,000 manifests, against its floor and against one engine per file.

    make bench-check            # or: python -m benchmarks.bench_check [--manifests N]

Three timings in one run, over the same N manifests (the example manifest, varied):
  floor     reading and parsing the N YAML files (what any checker must do)
  ours      parsing + evaluating the `manifests` policies on one embedded OPA engine
  per-file  a fresh engine (compile + evaluate) per file, as a naive loop over
            `opa eval` would; measured on the first 50 files and scaled to N
And the policies' own tests with coverage (`conftest verify`, what every `mlops gate` runs
first), two ways on one engine:
  ours      one query text for every test (the test named through a builtin), prepared once,
            and one traced evaluation for the coverage
  per-test  a query text per test (`data.<package>.<test>`) with its own coverage report: OPA
            prepares each new query text afresh, compiling every module again
Writes benchmarks/results/check.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import ROOT, save


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--manifests", type=int, default=1000)
    args = parser.parse_args()
    count = 60 if common.smoke(args) else args.manifests
    with common.Run("check") as run:
        measure(count, run.work)


def measure(count: int, work: Path) -> None:

    from mlops_gitops.core import yamlio
    from mlops_gitops.gate import policy

    base = (ROOT / "environments/staging").glob("*.yaml")
    template = next(iter(base)).read_text()
    paths = []
    for i in range(count):
        text = template.replace("version: null", f"version: {i % 7 + 1}")
        if i % 10 == 0:
            stable, canary = str(i % 7 + 1), str(i % 7 + 2)
            text += "traffic:\n  - version: " + stable + "\n    percent: 90\n"
            text += "  - version: " + canary + "\n    percent: 10\n"
        path = work / "environments" / "staging" / f"m{i:04d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    files = policy.load_policies([ROOT / "policies"], ROOT)

    started = time.perf_counter()
    inputs = [(str(p), yamlio.loads_data(p.read_text(), str(p))) for p in paths]
    floor = time.perf_counter() - started

    started = time.perf_counter()
    inputs = [(str(p), yamlio.loads_data(p.read_text(), str(p))) for p in paths]
    results = policy.evaluate(files, inputs, ["manifests"])
    ours = time.perf_counter() - started
    assert len(results) == count

    sample = inputs[:50]
    started = time.perf_counter()
    for name, document in sample:
        policy.evaluate(files, [(name, document)], ["manifests"])
    per_file = (time.perf_counter() - started) * count / len(sample)

    tests_s, tests_per_query_s, tests = policy_tests(policy, files)
    summary = {
        "policy_tests": tests,
        "policy_tests_s": round(tests_s, 3),
        "policy_tests_per_query_s": round(tests_per_query_s, 3),
        "per_query_over_ours": round(tests_per_query_s / tests_s, 1),
        "manifests": count,
        "floor_s": round(floor, 3),
        "ours_s": round(ours, 3),
        "per_file_engine_s": round(per_file, 3),
        "ours_over_floor": round(ours / floor, 2),
        "per_file_over_ours": round(per_file / ours, 1),
        "failures_found": sum(len(r.of("failure")) for r in results),
    }
    save("check", summary)
    print(json.dumps(summary, indent=2))


def policy_tests(policy: Any, files: list[Any]) -> tuple[float, float, int]:
    """Seconds to run every policy test with coverage, ours and a query text per test; and how
    many tests there are. Both must agree on every outcome and every covered line."""
    coverage = policy.Coverage()
    ours, outcomes = common.timed(lambda: policy.run_tests(files, coverage=coverage))
    reference = policy.Coverage()
    started = time.perf_counter()
    passed = []
    with policy.EmbeddedOpa(files) as opa:
        for test in outcomes:
            rows = opa.query(f"x := data.{test.package}.{test.name}", coverage=True)
            reference.add(opa.engine.last_coverage)
            passed.append(bool(rows) and rows[0].get("x") is True)
    per_query = time.perf_counter() - started
    assert passed == [t.passed for t in outcomes] and reference.files() == coverage.files()
    return ours, per_query, len(outcomes)


if __name__ == "__main__":
    main()
