"""`mlops check` over 1,000 manifests, against its floor and against one engine per file.

    make bench-check            # or: python -m benchmarks.bench_check [--manifests N]

Three timings in one run, over the same N manifests (the example manifest, varied):
  floor     reading and parsing the N YAML files (what any checker must do)
  ours      parsing + evaluating the `manifests` policies on one embedded OPA engine
  per-file  a fresh engine (compile + evaluate) per file, as a naive loop over
            `opa eval` would; measured on the first 50 files and scaled to N
Writes benchmarks/results/check.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks import common
from benchmarks.common import ROOT, save


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--manifests", type=int, default=1000)
    args = parser.parse_args()
    if common.smoke(args):
        count = 60
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

    summary = {
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


if __name__ == "__main__":
    main()
