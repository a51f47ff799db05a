"""Stage prepare: check the raw table and split it into train and test sets (seeded; stratified
by the label for a classifier)."""

from __future__ import annotations

import sys

import pandas as pd
from sklearn.model_selection import train_test_split

from .common import data_dir, params, target, task


def main(model: str) -> None:
    cfg = params(model)["prepare"]
    label = target(model)
    raw = pd.read_csv(data_dir(model) / "raw.csv")
    if raw.empty:
        raise SystemExit(f"data/{model}/raw.csv: no rows (expected the table to learn from)")
    missing = raw.columns[raw.isna().any()].tolist()
    if missing:
        raise SystemExit(
            f"data/{model}/raw.csv: columns {missing} have missing values (expected complete rows)"
        )
    if label not in raw:
        raise SystemExit(f"data/{model}/raw.csv: no column {label!r} (expected the label column)")
    train, test = train_test_split(
        raw,
        test_size=float(cfg["test_size"]),
        random_state=int(cfg["seed"]),
        stratify=raw[label] if task(model).classifies else None,
    )
    train.to_csv(data_dir(model) / "train.csv", index=False)
    test.to_csv(data_dir(model) / "test.csv", index=False)


if __name__ == "__main__":
    main(sys.argv[1])
