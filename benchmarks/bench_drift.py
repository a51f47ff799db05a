"""`mlops drift` over 100,000 logged rows x 20 features, against evidently alone, in one run.

    make bench-drift            # or: python -m benchmarks.bench_drift [--rows N] [--features F]

The same data twice:
  evidently  DataDriftPreset on two ready pandas frames (reference, current): the floor
  ours       drift.run: read and parse the inference log (one JSON line per request, as the
             model server writes it), build the frame, type the columns, the same evidently
             report, then the HTML and JSON reports written
Rows per second = logged rows / seconds. Writes benchmarks/results/drift.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=20)
    args = parser.parse_args()

    from mlops_gitops import drift
    from mlops_gitops.config import load_repo
    from mlops_gitops.registry import Registry
    from mlops_gitops.state import inference_log

    from tests.engine.workflows import sandbox

    work = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    try:
        repo_dir = sandbox(work / "repo")
        repo = load_repo(repo_dir)
        model = sorted(repo.models)[0]
        reference, current = (
            frames(args.rows, args.features, 0.0, 1),
            frames(args.rows, args.features, 0.3, 2),
        )
        ref_path = work / "reference.csv"
        reference.to_csv(ref_path, index=False)  # type: ignore[attr-defined]
        log = inference_log(repo_dir, "staging", model)
        log.parent.mkdir(parents=True)
        with log.open("w") as handle:
            for i, record in enumerate(current.to_dict(orient="records")):  # type: ignore[attr-defined]
                entry = {
                    "request_id": f"r{i}",
                    "at": "2026-11-23T10:00:00.000Z",
                    "model": model,
                    "environment": "staging",
                    "version": 1,
                    "role": "primary",
                    "inputs": [record],
                    "outputs": [[0.5, 0.5]],
                    "latency_ms": 1.0,
                }
                handle.write(json.dumps(entry) + "\n")
        kinds = {c: ("categorical" if c.startswith("c") else "numerical") for c in reference.columns}  # type: ignore[attr-defined]
        config = {
            "numeric": {"method": "psi", "threshold": 0.2},
            "categorical": {"method": "jensenshannon", "threshold": 0.1},
        }
        drift._evidently(reference.head(1000), current.head(1000), kinds, config, {}, 0.5)  # import, warm up

        started = time.perf_counter()
        snapshot = drift._evidently(reference, current, kinds, config, {}, 0.5)
        alone = time.perf_counter() - started
        alone_drifted = sum(1 for c in drift._columns(snapshot.dict(), kinds) if c.drifted)

        started = time.perf_counter()
        result = drift.run(repo, Registry(repo), model, "staging", reference=ref_path, out_dir=work / "out")
        ours = time.perf_counter() - started
        assert result.rows == args.rows and len(result.columns) == args.features
        assert len(result.drifted) == alone_drifted, (result.drifted, alone_drifted)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        "rows": args.rows,
        "features": args.features,
        "evidently_alone_s": round(alone, 2),
        "ours_s": round(ours, 2),
        "evidently_rows_per_s": round(args.rows / alone),
        "ours_rows_per_s": round(args.rows / ours),
        "ours_over_evidently": round(ours / alone, 2),
        "drifted_columns": len(result.drifted),
    }
    save("drift", summary)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
