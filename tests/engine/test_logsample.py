"""Drift at scale: the inference log streamed and sampled (never held whole), the training file
read in chunks and sampled the same way. Real files in the model server's line format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from mlops_gitops.core.inference_log import entry as log_entry
from mlops_gitops.monitor.logsample import sample_csv, sample_log


def write_log(path: Path, rows: int, batch: int = 1, start: str = "2026-11-23T10:00:00.000Z") -> None:
    lines = []
    for first in range(0, rows, batch):
        records = [
            {"x": i, "kind": "odd" if i % 2 else "even"} for i in range(first, min(first + batch, rows))
        ]
        entry = log_entry(
            {"model": "m", "environment": "staging"},
            f"r{first}",
            1 + (first // batch) % 2,
            "primary",
            records,
            [[0.5]] * len(records),
            0.001,
        )
        lines.append(json.dumps({**entry.to_dict(), "at": start}))
    path.write_text("\n".join(lines) + "\n")


def test_a_log_larger_than_the_cap_is_counted_whole_and_sampled_uniformly(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    write_log(log, 20_000, batch=4)
    found = sample_log(log, None, cap=2_000, seed=3)
    assert (found.total, len(found.rows), found.columns) == (20_000, 2_000, ["x", "kind"])
    assert sum(found.versions.values()) == 20_000 and set(found.versions) == {1, 2}
    xs = sorted(row[0] for row in found.rows)
    assert len(set(xs)) == 2_000  # without replacement
    # uniform: each tenth of the log holds about a tenth of the sample (binomial bounds)
    deciles = [sum(1 for x in xs if k * 2_000 <= x < (k + 1) * 2_000) for k in range(10)]
    assert all(140 <= d <= 260 for d in deciles), deciles
    assert sample_log(log, None, cap=2_000, seed=3).rows == found.rows  # seeded: the same sample
    small = sample_log(log, None, cap=50_000)
    assert [row[0] for row in small.rows] == list(range(20_000))  # under the cap: every row, in order


def test_bad_lines_other_roles_and_the_window_are_honoured(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    write_log(log, 10, start="2026-11-20T00:00:00.000Z")
    with log.open("a") as handle:
        handle.write("{not json\n")
        handle.write('{"request_id": "cut short\n')
        late = log_entry(
            {"model": "m", "environment": "staging"},
            "late",
            1,
            "primary",
            [{"x": 99, "kind": "odd", "new": 1}],
            [[1]],
            0.0,
        ).to_dict() | {"at": "2026-11-25T00:00:00.000Z"}
        handle.write(json.dumps(late) + "\n")
        shadow = {**late, "role": "shadow", "inputs": [{"x": -1}]}
        failed = {**late, "error": "boom", "inputs": [{"x": -2}]}
        handle.write(json.dumps(shadow) + "\n" + json.dumps(failed) + "\n")
    everything = sample_log(log, None, cap=100)
    assert (everything.total, everything.skipped) == (11, 2)
    assert everything.columns == ["x", "kind", "new"] and everything.rows[0] == (0, "even", None)
    assert everything.frame()["new"].tolist()[-1] == 1
    window = sample_log(log, datetime(2026, 11, 24, tzinfo=UTC), cap=100)
    assert [row[0] for row in window.rows] == [99]
    assert sample_log(tmp_path / "missing.jsonl", None, 10).total == 0


def test_a_large_csv_is_read_in_chunks_and_sampled(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    pd.DataFrame({"x": range(10_000), "kind": ["a", "b"] * 5_000}).to_csv(path, index=False)
    kept, total = sample_csv(path, cap=1_000, seed=1, chunk=700)
    assert (total, len(kept), list(kept.columns)) == (10_000, 1_000, ["x", "kind"])
    assert kept["x"].is_unique and kept["x"].is_monotonic_increasing  # the file's order kept
    deciles = [int(((kept["x"] >= k * 1_000) & (kept["x"] < (k + 1) * 1_000)).sum()) for k in range(10)]
    assert all(60 <= d <= 140 for d in deciles), deciles
    again, _ = sample_csv(path, cap=1_000, seed=1, chunk=2_500)
    assert len(again) == 1_000  # chunk size changes the draw, never the size
    whole, total = sample_csv(path, cap=20_000)
    assert whole["x"].tolist() == list(range(10_000)) and total == 10_000
    (tmp_path / "empty.csv").write_text("x,kind\n")
    empty, total = sample_csv(tmp_path / "empty.csv", cap=10)
    assert (list(empty.columns), total) == (["x", "kind"], 0)
