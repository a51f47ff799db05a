"""Stage ingest: write the raw table from the model's source (params.yaml's `data.source`).

- A table of the team's own, CSV or Parquet, under pipelines/sources/ and tracked by DVC
  (`mlops model add NAME --data PATH --target COLUMN` puts it there with `dvc add`, or
  `dvc import-url` for a remote one): copied as it is.
- `stages/churn_data.py`: the example's synthetic table, made from `rows`, `seed` and `shift`.
"""

from __future__ import annotations

import sys

import pandas as pd

from .churn_data import make_customers
from .common import HERE, data_dir, params

EXAMPLE = "stages/churn_data.py"
TABLES = (".csv", ".parquet")


def read_table(model: str, source: str) -> pd.DataFrame:
    """The source table; a source outside pipelines/ or of another kind is one clear line."""
    path = (HERE / source).resolve()
    if not path.is_relative_to(HERE) or path.suffix not in TABLES:
        raise SystemExit(
            f"params.yaml: models.{model}.data.source: {source!r} "
            f"(expected a .csv or .parquet file under pipelines/, or {EXAMPLE})"
        )
    if not path.is_file():
        raise SystemExit(
            f"params.yaml: models.{model}.data.source: {source} is missing (expected the table; "
            f"`dvc pull {source}` fetches it from the team's remote)"
        )
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def main(model: str) -> None:
    cfg = params(model)["data"]
    source = str(cfg.get("source", EXAMPLE))
    if source == EXAMPLE:
        frame = make_customers(
            rows=int(cfg["rows"]), seed=int(cfg["seed"]), shift=float(cfg.get("shift", 0.0))
        )
    else:
        frame = read_table(model, source)
    frame.to_csv(data_dir(model) / "raw.csv", index=False)


if __name__ == "__main__":
    main(sys.argv[1])
