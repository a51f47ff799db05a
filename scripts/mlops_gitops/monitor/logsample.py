"""The inference log, read for drift at any size: streamed line by line, never held whole, its
logged rows counted and a uniform random sample of them kept (reservoir sampling, seeded, so the
same log gives the same sample).

Evidently advises sampling large datasets (its "sampling for large datasets" option): above a
thousand rows its drift methods are distances between distributions (PSI, Jensen-Shannon,
Wasserstein), which a random sample of fifty thousand rows estimates closely, while the
cost of the full report grows with every row. So `mlops drift` judges at most
`drift.sample_rows` rows of each side (models/<model>/model.yaml; 50,000 by default) and
says how many it read and how many it judged.

The log is read by `inference_log.scan`, with its rules: primary entries only, a window by
time, a line cut short or garbled skipped and counted, never fatal; a failed request has no
row the model answered, so none of its rows is sampled.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..core import inference_log


@dataclass
class LogSample:
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # the sample, in `columns` order
    outputs: list[Any] = field(default_factory=list)  # what the model answered for each sampled row
    total: int = 0  # logged rows in the window (all of them, sampled or not)
    versions: Counter[int] = field(default_factory=Counter)  # logged rows per version
    skipped: int = 0  # unreadable lines

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame.from_records(self.rows, columns=self.columns)


def sample_log(path: Path, since: datetime | None, cap: int, seed: int = 0) -> LogSample:
    """At most `cap` of the log's answered rows at or after `since`, uniformly at random."""
    found = LogSample()
    chance = random.Random(seed)
    index: dict[str, int] = {}
    for entry in inference_log.scan(path, since):
        if entry is None:
            found.skipped += 1
            continue
        if not entry.answered:  # a failed request: traffic, but no row the model answered
            continue
        found.versions[entry.version] += len(entry.inputs)
        outputs = entry.outputs if isinstance(entry.outputs, list) else []
        for number, record in enumerate(entry.inputs):
            found.total += 1
            answer = outputs[number] if number < len(outputs) else None
            if len(found.rows) < cap:
                found.rows.append(_row(record, found, index))
                found.outputs.append(answer)
            else:
                slot = chance.randrange(found.total)
                if slot < cap:
                    found.rows[slot] = _row(record, found, index)
                    found.outputs[slot] = answer
    width = len(found.columns)
    found.rows = [row + (None,) * (width - len(row)) for row in found.rows]  # columns seen later
    return found


def _row(record: dict[str, Any], found: LogSample, index: dict[str, int]) -> tuple[Any, ...]:
    """The record as a tuple in column order (a column first seen here is added at the end)."""
    for name in record:
        if name not in index:
            index[name] = len(found.columns)
            found.columns.append(name)
    if len(record) == len(found.columns):
        try:
            return tuple(record[name] for name in found.columns)
        except KeyError:
            pass
    return tuple(record.get(name) for name in found.columns)


def sample_csv(path: Path, cap: int, seed: int = 0, chunk: int = 200_000) -> tuple[Any, int]:
    """(at most `cap` rows of the CSV, uniformly at random; how many rows it has), read in
    chunks of `chunk` rows, so a large training file never sits in memory whole: each row gets a
    random key and the `cap` smallest keys are kept across chunks."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    kept: Any = None
    keys: Any = np.empty(0)
    total = 0
    for part in pd.read_csv(path, chunksize=chunk):
        total += len(part)
        part_keys = rng.random(len(part))
        if kept is None:
            kept, keys = part, part_keys
        else:
            kept, keys = pd.concat([kept, part], ignore_index=True), np.concatenate([keys, part_keys])
        if len(kept) > cap:
            best = np.argpartition(keys, cap)[:cap]
            best.sort()  # the file's order, among the rows kept
            kept, keys = kept.iloc[best].reset_index(drop=True), keys[best]
    if kept is None:
        kept = pd.read_csv(path)  # a header and no rows
    return kept, total
