"""`mlops predict`: send a file of rows to a deployment, as its clients would.

The rows go to the deployment's `/predict` in batches (MLflow's `dataframe_records`), each
batch a request with its own request id, so they land in the server's inference log like any
client's: what `mlops drift` compares with the training data, and what `mlops feedback` joins
ground truth to. Only the model's input columns are sent (the server names them in
`/metadata`); when the file also holds the model's target column, its values can be written
out as a labels file keyed by request id, ready for `mlops feedback`.
"""

from __future__ import annotations

import csv
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import Repo
from ..core.errors import ExitCode, MlopsError
from ..core.health import Health
from ..deploy.targets.local import http_json

MAX_BATCH = 10_000


@dataclass
class Sent:
    url: str = ""
    rows: int = 0
    requests: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # HTTP status (or "no answer") -> requests
    versions: Counter[int] = field(default_factory=Counter)  # rows answered per version
    latencies: list[float] = field(default_factory=list)  # seconds per request
    answers: list[dict[str, Any]] = field(default_factory=list)  # request_id, row, version, prediction
    labels: list[dict[str, Any]] = field(default_factory=list)  # request_id, row, label

    def to_dict(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "rows": self.rows,
            "requests": self.requests,
            "failed": self.failed,
            "versions": {str(v): n for v, n in sorted(self.versions.items())},
            "latency_p50_ms": round(1000 * ordered[len(ordered) // 2], 2) if ordered else None,
            "latency_max_ms": round(1000 * ordered[-1], 2) if ordered else None,
        }


EMPTY = {"string": "", "boolean": False, "long": 0, "integer": 0, "double": 0.0, "float": 0.0}


def example(loaded: Repo, model: str, env: str, protocol: str = "mlflow") -> dict[str, Any]:
    """A valid request body for what `env`'s manifest serves of `model`: one row of the input
    example logged with that version (its signature's columns, empty values when it logged
    none), as MLflow's `dataframe_records` or the Open Inference Protocol's tensors."""
    from ..core import protocols, state
    from ..registry.client import Registry

    manifest = loaded.manifests.get((env, model))
    if manifest is None:
        raise MlopsError(f"{model} in {env}: no manifest (expected environments/{env}/{model}.yaml)")
    version = manifest.get("version")
    if version is None:
        raise MlopsError(f"{model} in {env}: nothing promoted (the manifest's version is null)")
    model_dir = Registry(loaded).fetch_verified(model, int(version), state.artifacts_dir(loaded.root)).path
    columns = protocols.signature_columns(model_dir)
    rows = protocols.input_example(model_dir)[:1] or [{name: EMPTY.get(kind, "") for name, kind in columns}]
    if protocol == "v2":
        return {"inputs": protocols.v2_inputs(rows, columns or [(name, "string") for name in rows[0]])}
    return {"dataframe_records": rows}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV, JSON lines (.jsonl) or JSON list (.json) file, as JSON-typed records."""
    if not path.is_file():
        raise MlopsError(f"{path}: no such file (expected rows as CSV, JSON lines or a JSON list)")
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise MlopsError(f"{path}:{number}: not JSON (expected one object per line)") from None
    elif path.suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MlopsError(f"{path}: not JSON: {exc.msg} (expected a list of objects)") from None
    else:
        import pandas as pd

        try:
            frame = pd.read_csv(path)
        except (ValueError, OSError) as exc:
            raise MlopsError(f"{path}: not a CSV table: {exc} (expected a header and rows)") from None
        rows = json.loads(frame.to_json(orient="records"))
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise MlopsError(f"{path}: no rows (expected a non-empty list of column: value objects)")
    return rows


def send(
    url: str,
    rows: list[dict[str, Any]],
    target_column: str | None,
    batch_size: int = 50,
    progress: Callable[[int], None] | None = None,
) -> Sent:
    """Post `rows` to `url`/predict in batches; what was answered, by whom, how fast."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise MlopsError(f"--batch-size {batch_size}: out of range (expected 1 to {MAX_BATCH})")
    status, metadata = http_json("GET", f"{url}/metadata", timeout=10)
    if status != 200 or not isinstance(metadata, dict):
        raise MlopsError(f"{url}/metadata: answered {status or 'nothing'} (expected a running model server)")
    columns = [c["name"] for c in metadata.get("inputs") or []]
    missing = sorted({c for c in columns if any(c not in row for row in rows)})
    if missing:
        raise MlopsError(
            f"rows: no column {missing[0]!r} in every row (expected the model's inputs {columns})"
        )
    sent = Sent(url=url)
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        request_id = uuid.uuid4().hex
        began = time.perf_counter()
        status, answer = http_json(
            "POST",
            f"{url}/predict",
            {"dataframe_records": [{c: row[c] for c in columns} for row in batch]},
            {"X-Request-Id": request_id},
            timeout=60,
        )
        sent.latencies.append(time.perf_counter() - began)
        sent.requests += 1
        sent.rows += len(batch)
        if status != 200 or not isinstance(answer, dict):
            key = str(status) if status else "no answer"
            sent.failed[key] = sent.failed.get(key, 0) + 1
        else:
            version = int(answer.get("version", 0))
            sent.versions[version] += len(batch)
            for index, prediction in enumerate(answer.get("predictions") or []):
                sent.answers.append(
                    {"request_id": request_id, "row": index, "version": version, "prediction": prediction}
                )
            if target_column:
                for index, row in enumerate(batch):
                    if row.get(target_column) is not None:
                        sent.labels.append(
                            {"request_id": request_id, "row": index, "label": row[target_column]}
                        )
        if progress:
            progress(len(batch))
    return sent


def run(
    repo: Repo,
    model: str,
    env: str,
    rows: list[dict[str, Any]],
    batch_size: int = 50,
    out_file: Path | None = None,
    labels_file: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> Sent:
    """`mlops predict`: `rows` to MODEL's deployment in ENV; the answers (and the labels, when the
    rows hold the model's target column) written by request id when asked."""
    from ..deploy.reconcile import reconciler_for

    definition = repo.require_model(model)
    repo.require_environment(env)
    live = reconciler_for(repo).target.observe(env, model)
    if live.health == Health.MISSING or not live.url:
        raise MlopsError(f"{model} in {env}: not running (expected `mlops reconcile --env {env}` first)")
    target = definition.get("target_column")
    sent = send(live.url, rows, target, batch_size, progress)
    if out_file:
        write_csv(out_file, sent.answers, ["request_id", "row", "version", "prediction"])
    if labels_file:
        if not sent.labels:
            raise MlopsError(
                f"rows: no column {target!r} "
                f"(expected the target column of models/{model}/model.yaml for --labels-out)"
            )
        write_csv(labels_file, sent.labels, ["request_id", "row", "label"])
    return sent


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()})


class RequestsFailed(MlopsError):
    exit_code = ExitCode.FAILED
