"""Stage ingest: write the raw table. Replace with your extract (or `dvc import`) for real data."""

from __future__ import annotations

import sys

from .churn_data import make_customers
from .common import data_dir, params


def main(model: str) -> None:
    cfg = params(model)["data"]
    frame = make_customers(rows=int(cfg["rows"]), seed=int(cfg["seed"]), shift=float(cfg.get("shift", 0.0)))
    frame.to_csv(data_dir(model) / "raw.csv", index=False)


if __name__ == "__main__":
    main(sys.argv[1])
