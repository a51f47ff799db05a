"""`mlops drift` over 100,000 logged rows x 20 features, against evidently alone, in one run.

    make bench-drift            # or: python -m benchmarks.bench_drift [--rows N] [--features F]

The same data twice:
  evidently  DataDriftPreset on two ready pandas frames (reference, current): the floor
  ours       drift.run: stream the inference log (one JSON line per request, as the model
             server writes it), sample at most drift.sample_rows rows of each side (50,000;
             evidently's advice for large data), build and type the frame, the same evidently
             report, then the HTML and JSON reports written
Both warm: evidently imported, the registry's client made (per-process costs, not per-row).
Rows per second = logged rows / seconds. With --memory, `mlops drift` also runs as its own
process over the same log, and its peak resident memory is reported (the 1,000,000-row case:
`--rows 1000000 --memory`). Writes benchmarks/results/drift.json (drift-<rows>.json otherwise).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks import common
from benchmarks.common import save


def frames(rows: int, features: int, shift: float, seed: int) -> object:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for i in range(features):
        if i % 4 == 3:
            data[f"c{i:02d}"] = rng.choice(
                ["a", "b", "c", "d"], size=rows, p=[0.4 - 0.2 * shift, 0.3, 0.2, 0.1 + 0.2 * shift]
            )
        else:
            data[f"n{i:02d}"] = rng.normal(shift * (i % 3), 1.0, size=rows).round(4)
    return pd.DataFrame(data)


def _peak_of_mlops_drift(repo: Path, model: str, reference: Path, work: Path, rows: int) -> int:
    """Peak resident memory (MiB) of `mlops drift MODEL` run as its own process over the log
    (through a small parent process whose only child it is, so nothing else is counted)."""
    import subprocess
    import sys

    measure = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(done.stdout)\n"
        "sys.stderr.write(done.stderr)\n"
    )
    drift = [sys.executable, "-m", "mlops_gitops.cli", "drift", model, "--env", "staging", "--no-record"]
    drift += ["--reference", str(reference), "--out", str(work / "out-process"), "-o", "json"]
    proc = subprocess.run([sys.executable, "-c", measure, *drift], cwd=repo, capture_output=True, text=True)
    head, _, body = proc.stdout.partition("\n")
    code, peak_kib = (int(x) for x in head.split())
    assert code in (0, 1), proc.stderr
    (result,) = json.loads(body)["results"]
    assert result["rows"] == rows, result  # it read the whole log
    return round(peak_kib / 1024)


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--memory", action="store_true", help="also measure `mlops drift`'s peak memory")
    args = parser.parse_args()
    if common.smoke(args):
        args.rows, args.features, args.memory = 1_200, 4, True

    from mlops_gitops.core import inference_log
    from mlops_gitops.core.config import load_repo
    from mlops_gitops.core.state import inference_log as log_path
    from mlops_gitops.monitor import drift
    from mlops_gitops.registry.client import Registry

    from tests.engine.workflows import sandbox

    with common.Run("drift") as run:
        work = run.work
        repo_dir = sandbox(work / "repo")
        repo = load_repo(repo_dir)
        model = sorted(repo.models)[0]
        reference, current = (
            frames(args.rows, args.features, 0.0, 1),
            frames(args.rows, args.features, 0.3, 2),
        )
        ref_path = work / "reference.csv"
        reference.to_csv(ref_path, index=False)  # type: ignore[attr-defined]
        log = log_path(repo_dir, "staging", model)
        log.parent.mkdir(parents=True)
        with log.open("w") as handle:
            spec = {"model": model, "environment": "staging"}
            for i, record in enumerate(current.to_dict(orient="records")):  # type: ignore[attr-defined]
                entry = inference_log.entry(spec, f"r{i}", 1, "primary", [record], [[0.5, 0.5]], 0.001)
                handle.write(json.dumps(entry.to_dict() | {"at": "2026-11-23T10:00:00.000Z"}) + "\n")
        kinds = {c: ("categorical" if c.startswith("c") else "numerical") for c in reference.columns}  # type: ignore[attr-defined]
        config = {
            "numeric": {"method": "psi", "threshold": 0.2},
            "categorical": {"method": "jensenshannon", "threshold": 0.1},
        }
        # import, warm up
        drift.evidently_report(reference.head(1000), current.head(1000), kinds, config, {}, 0.5)

        started = time.perf_counter()
        snapshot = drift.evidently_report(reference, current, kinds, config, {}, 0.5)
        alone = time.perf_counter() - started
        alone_drifted = sum(1 for c in drift.column_drifts(snapshot.dict(), kinds) if c.drifted)

        registry = Registry(repo)
        registry.aliases()  # the registry's client made: a per-process cost
        started = time.perf_counter()
        result = drift.run(repo, registry, model, "staging", reference=ref_path, out_dir=work / "out")
        ours = time.perf_counter() - started
        assert result.rows == args.rows and len(result.columns) == args.features
        assert len(result.drifted) == alone_drifted, (result.drifted, alone_drifted)
        peak_mib = _peak_of_mlops_drift(repo_dir, model, ref_path, work, args.rows) if args.memory else None
    summary = {
        "rows": args.rows,
        "features": args.features,
        "evidently_alone_s": round(alone, 2),
        "ours_s": round(ours, 2),
        "evidently_rows_per_s": round(args.rows / alone),
        "ours_rows_per_s": round(args.rows / ours),
        "ours_over_evidently_throughput": round(alone / ours, 2),
        "sampled_rows": result.sampled_rows,
        "drifted_columns": len(result.drifted),
        "evidently_drifted_columns": alone_drifted,
    }
    if peak_mib is not None:
        summary["mlops_drift_peak_rss_mib"] = peak_mib
    save("drift" if args.rows == 100_000 or args.smoke else f"drift-{args.rows}", summary)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
