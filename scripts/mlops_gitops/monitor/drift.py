"""`mlops drift`: the inference log of a deployment against the training data of what serves.

    reference  the training data of the version serving in the environment (its `@env`
               alias), found through its lineage (the `mlops.data` tag: path and md5 of
               every data file its pipeline read) in the workspace, the DVC cache, a DVC
               remote that is a local directory, or else fetched from the project's DVC
               remote (any kind: s3, gs, http, ...) with `dvc.api.open` at the lineage's
               commit, checked against the md5 and kept under the state directory, so a
               fresh runner with no cache finds it
    current    the model server's inference log (`<state>/inference/<env>/<model>.jsonl`),
               primary answers in the window (`--since`); shadow answers and failed
               requests are not traffic the model saw; a corrupt line is skipped and counted.
               Streamed, never held whole: at most `drift.sample_rows` rows (50,000) of each
               side are judged, a seeded uniform sample (logsample.py), as evidently advises
    test       evidently's DataDriftPreset, one test per column chosen by type (numeric,
               categorical) with the method and threshold of `models/<model>/model.yaml`
               (`drift:`), per-column overrides under `drift.columns`
    prediction the model's answers judged the same way, as one more column (`prediction`;
               `drift.columns.prediction` overrides its test): the logged answers against the
               serving version's answers on the reference sample. What the answer is follows
               the model's task: a binary classifier's positive score and a regressor's number
               (numeric), a multiclass classifier's predicted class (categorical). It drifts
               when the model's outputs move, whichever inputs moved them; it does not count
               in the share of drifted columns

The result: drift (severity critical when the share of drifted columns reaches
`drift.drift_share`, else warning), no drift, or not enough data (fewer than
`drift.min_rows` logged rows). It is written as evidently's self-contained HTML and JSON,
appended to the deployment's record log (kind drift), and recorded on the registered model
(`tags.drift_tags`), where `mlops facts` reads it (the promotion gate's drift rule).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..core import state, tasks
from ..core import tags as names
from ..core.config import Repo
from ..core.errors import MlopsError
from ..core.pages import display, headed_html, report_stem, title
from ..core.records import RecordLog
from .logsample import sample_csv, sample_log


class Verdict(StrEnum):
    DRIFT = "drift"
    OK = "no-drift"
    INSUFFICIENT = "insufficient-data"  # fewer logged rows than min_rows: nothing is judged


class Severity(StrEnum):
    CRITICAL = "critical"  # the share of drifted columns reached drift_share
    WARNING = "warning"


STATUS_DRIFT, STATUS_OK, STATUS_INSUFFICIENT = Verdict.DRIFT, Verdict.OK, Verdict.INSUFFICIENT
SAMPLE_ROWS = 50_000  # rows of each side judged at most (drift.sample_rows; logsample.py says why)
DEFAULT_TESTS = {
    "numeric": {"method": "psi", "threshold": 0.2},
    "categorical": {"method": "jensenshannon", "threshold": 0.1},
}


@dataclass
class ColumnDrift:
    column: str
    kind: str  # numerical | categorical
    method: str
    threshold: float
    score: float | None
    drifted: bool


@dataclass
class DriftResult:
    model: str
    environment: str
    status: Verdict
    severity: Severity | None
    checked_at: str
    version: int | None  # the serving version whose training data is the reference
    versions_seen: dict[str, int]  # logged primary rows per version in the window
    rows: int
    min_rows: int
    reference_rows: int
    reference: str  # where the reference came from
    skipped_lines: int  # corrupt or unreadable log lines
    since: str | None
    drift_share: float
    drifted_share: float = 0.0
    sampled_rows: int = 0  # logged rows judged (at most drift.sample_rows; `rows` were read)
    columns: list[ColumnDrift] = field(default_factory=list)
    prediction: ColumnDrift | None = None  # the model's answers (None: nothing to compare, see note)
    prediction_note: str = ""
    report_html: str = ""
    report_json: str = ""

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drifted_columns": self.drifted}


def parse_since(value: str | None, now: datetime) -> datetime | None:
    """`24h`, `7d`, `30m`, or an RFC 3339 time; None for the whole log."""
    if not value:
        return None
    match = re.fullmatch(r"(\d+)([mhd])", value.strip())
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return now - timedelta(**{unit: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MlopsError(
            f"--since {value!r}: not a window (expected e.g. 24h, 7d, 30m or an RFC 3339 time)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def training_data(root: Path, data: dict[str, str], commit: str | None = None) -> Path:
    """The training file named by a version's lineage (`mlops.data`: {path: md5}), as it was:
    the workspace copy when its md5 still matches, else DVC's copy of that md5 (its cache or
    a local remote), else fetched from the DVC remote at the lineage's `commit`."""
    candidates = [p for p in data if p.endswith("/train.csv")] or [p for p in data if p.endswith(".csv")]
    if not candidates:
        raise MlopsError(
            f"lineage data {sorted(data)}: no training file "
            "(expected a .../train.csv recorded by `mlops register`)"
        )
    path, md5 = candidates[0], data[candidates[0]]
    workspace = root / path
    if workspace.is_file() and md5_file(workspace) == md5:
        return workspace
    for store in dvc_stores(root):
        for cached in (store / "files" / "md5" / md5[:2] / md5[2:], store / md5[:2] / md5[2:]):
            if cached.is_file():
                return cached
    if not re.fullmatch(r"[0-9a-f]{32}", md5):
        raise MlopsError(f"lineage data {path}: md5 {md5[:40]!r} (expected 32 hex digits)")
    fetched = state.references(root) / f"{md5}.csv"
    if fetched.is_file() and md5_file(fetched) == md5:
        return fetched
    if commit:
        return _from_remote(root, path, md5, commit, fetched)
    raise MlopsError(
        f"{path} (md5 {md5}): the training data of the serving version is neither in the workspace, "
        "the DVC cache nor a local DVC remote, and its lineage names no commit to fetch it at "
        "(expected `dvc pull` to have fetched it; or pass --reference)"
    )


def _from_remote(root: Path, path: str, md5: str, commit: str, dest: Path) -> Path:
    """`path` as DVC's remote holds it at `commit` (dvc.api.open), if it is the md5 recorded."""
    import tempfile

    import dvc.api

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as out:
        partial = Path(out.name)
        try:
            with dvc.api.open(path, repo=str(root), rev=commit, mode="rb") as source:
                digest = hashlib.md5()
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except Exception as exc:  # DVC's errors are many (no remote, no credentials, not found)
            partial.unlink(missing_ok=True)
            raise MlopsError(
                f"{path} (md5 {md5}): not in the workspace or a cache, and fetching it from the DVC "
                f"remote at {commit[:12]} failed: {type(exc).__name__}: {str(exc)[:300]} "
                "(expected the remote's credentials on this runner; or pass --reference)"
            ) from None
    if digest.hexdigest() != md5:
        partial.unlink(missing_ok=True)
        raise MlopsError(
            f"{path} at {commit[:12]}: the DVC remote's copy has md5 {digest.hexdigest()}, not {md5} "
            "(the version was trained on data not committed there: its lineage is dirty)"
        )
    partial.replace(dest)
    return dest


def md5_file(path: Path) -> str:
    """The md5 DVC records for a file (its content's)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def dvc_stores(root: Path) -> list[Path]:
    """DVC's cache directory and every remote that is a directory on this machine, as DVC
    itself reads them (.dvc/config, config.local, the user's and the system's)."""
    from dvc.config import Config, ConfigError

    try:
        config = Config(dvc_dir=str(root / ".dvc"))
    except ConfigError as exc:
        raise MlopsError(f"{root / '.dvc'}: {exc} (expected a valid DVC configuration)") from None
    stores = [Path(config["cache"].get("dir") or root / ".dvc" / "cache")]
    for remote in config["remote"].values():
        url = str(remote.get("url", ""))
        if url and "://" not in url:
            stores.append(Path(url))
    return stores


def _tests(config: dict[str, Any], kind: str) -> dict[str, Any]:
    return {**DEFAULT_TESTS[kind], **(config.get(kind) or {})}


def run(
    repo: Repo,
    registry: Any,
    model: str,
    env: str,
    since: str | None = None,
    reference: Path | None = None,
    out_dir: Path | None = None,
    now: datetime | None = None,
) -> DriftResult:
    """Measure drift; write the reports; return the result (recording it is `record`'s job)."""
    definition = repo.require_model(model)
    repo.require_environment(env)
    config = definition.get("drift") or {}
    min_rows, drift_share = int(config.get("min_rows", 200)), float(config.get("drift_share", 0.5))
    cap = int(config.get("sample_rows", SAMPLE_ROWS))
    moment = now or datetime.now(UTC)
    log = sample_log(state.inference_log(repo.root, env, model), parse_since(since, moment), cap)
    versions = log.versions
    version = registry.aliases().get(model, {}).get(env)
    if version is None and versions:
        version = versions.most_common(1)[0][0]
    result = DriftResult(
        model=model,
        environment=env,
        status=Verdict.INSUFFICIENT,
        severity=None,
        checked_at=moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        version=version,
        versions_seen={str(v): n for v, n in sorted(versions.items())},
        rows=log.total,
        min_rows=min_rows,
        reference_rows=0,
        reference="",
        skipped_lines=log.skipped,
        since=since,
        drift_share=drift_share,
    )
    if result.rows < min_rows:
        return result
    reference = reference or reference_data(repo, registry, model, env, version)
    ref, result.reference_rows = sample_csv(reference, cap)  # sampled like the log, in chunks
    result.sampled_rows = len(log.rows)
    ref, cur, kinds = _aligned(ref, log.frame(), definition.get("target_column"), reference)
    result.reference = display(repo.root, reference)
    answers = _answers(repo, registry, model, version, ref, log.outputs, tasks.of(definition))
    if isinstance(answers, str):
        result.prediction_note = answers
    else:
        ref[PREDICTION], cur[PREDICTION] = answers[0], answers[1]
        kinds[PREDICTION] = answers[2]
    snapshot = evidently_report(ref, cur, kinds, config, config.get("columns") or {}, drift_share)
    found = column_drifts(snapshot.dict(), kinds)
    result.columns = [c for c in found if c.column != PREDICTION]
    result.prediction = next((c for c in found if c.column == PREDICTION), None)
    result.drifted_share = round(len(result.drifted) / len(result.columns), 4)
    if result.drifted or (result.prediction and result.prediction.drifted):
        result.status = Verdict.DRIFT
        result.severity = Severity.CRITICAL if result.drifted_share >= drift_share else Severity.WARNING
    else:
        result.status = Verdict.OK
    _write_reports(repo.root, result, snapshot, out_dir or state.drift_reports(repo.root, env, model))
    return result


PREDICTION = "prediction"


def answer_of(task: tasks.Task, output: Any, classes: list[Any] | None) -> Any:
    """One answer as drift judges it: a binary classifier's positive score, a multiclass one's
    predicted class, a regressor's number (None when the output has another shape)."""
    values = output if isinstance(output, list) else [output]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if not numbers:
        return None
    if task is tasks.Task.MULTICLASS:
        best = max(range(len(numbers)), key=numbers.__getitem__)
        return str(classes[best]) if classes and best < len(classes) else str(best)
    return numbers[-1]


def _answers(
    repo: Repo, registry: Any, model: str, version: int | None, ref: Any, logged: list[Any], task: tasks.Task
) -> tuple[list[Any], list[Any], str] | str:
    """(the serving version's answers on the reference rows, the logged answers, their kind), or
    why the answers cannot be compared."""
    if PREDICTION in ref.columns:
        return f"a feature is named {PREDICTION!r}: the answers are not judged beside it"
    if version is None or not any(o is not None for o in logged):
        return "no version or no logged answers to judge"
    import mlflow.pyfunc

    try:
        tags = dict(registry.version(model, version).tags)
        path = registry.fetch_verified(model, version, state.artifacts_dir(repo.root)).path
        loaded = mlflow.pyfunc.load_model(str(path))
        schema = loaded.metadata.get_input_schema()
        inputs = schema.input_names() if schema is not None else list(ref.columns)
        out = loaded.predict(ref[[n for n in inputs if n in ref.columns]])
    except Exception as exc:
        return (
            f"v{version}'s answers on the reference rows could not be had: {str(exc).splitlines()[0][:200]}"
        )
    classes = names.classes_of(tags)
    rows = out.tolist() if hasattr(out, "tolist") else list(out)
    reference = [answer_of(task, row, classes) for row in rows]
    current = [answer_of(task, row, classes) for row in logged]
    return reference, current, "categorical" if task is tasks.Task.MULTICLASS else "numerical"


def reference_data(repo: Repo, registry: Any, model: str, env: str, version: int | None) -> Path:
    """The serving version's training data, from its lineage (at the commit that trained it)."""
    if version is None:
        raise MlopsError(f"{model} in {env}: no version serves there (no @{env} alias, nothing logged)")
    tags = dict(registry.version(model, version).tags)
    lineage = names.data_of(tags)
    if not lineage:
        raise MlopsError(
            f"{model} v{version}: no lineage data (tag mlops.data; expected a version registered by "
            "`mlops register`), so no training data to compare with; pass --reference"
        )
    commit = names.lineage_of(tags).get("git.commit")
    return training_data(repo.root, lineage, str(commit) if commit else None)


def _aligned(ref: Any, cur: Any, target: str | None, reference: Path) -> tuple[Any, Any, dict[str, str]]:
    """The columns both sides hold (not the target), each numerical or categorical, typed alike."""
    import pandas as pd

    columns = [c for c in cur.columns if c in ref.columns and c != target]
    if not columns:
        raise MlopsError(
            f"{reference}: no column in common with the logged inputs (expected the model's training data)"
        )
    ref, cur = ref[columns], cur[columns]
    kinds = {
        c: "numerical"
        if pd.api.types.is_numeric_dtype(ref[c]) and not pd.api.types.is_bool_dtype(ref[c])
        else "categorical"
        for c in columns
    }
    for c, kind in kinds.items():
        if kind == "categorical":
            ref[c], cur[c] = ref[c].astype(str), cur[c].astype(str)
        else:
            cur[c] = pd.to_numeric(cur[c], errors="coerce")
    return ref, cur, kinds


def _write_reports(root: Path, result: DriftResult, snapshot: Any, folder: Path) -> None:
    """evidently's HTML, headed by what it is about, and the JSON beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    versions = [result.version] if result.version is not None else []
    stem = report_stem("drift", result.model, result.environment, versions, result.checked_at)
    html, raw = folder / f"{stem}.html", folder / f"{stem}.json"
    snapshot.save_html(str(html))
    verdict = {
        Verdict.DRIFT: f"drift ({result.severity}): {', '.join(result.drifted)}",
        Verdict.OK: "no drift",
    }
    headed_html(
        html,
        title(result.model, result.environment, versions, "Drift"),
        f"{verdict.get(result.status, result.status)}. {result.rows} logged rows"
        + (f" since {result.since}" if result.since else "")
        + f" against {result.reference_rows} training rows ({result.reference});"
        + f" checked {result.checked_at}.",
    )
    result.report_html, result.report_json = display(root, html), display(root, raw)
    raw.write_text(
        json.dumps({"result": result.to_dict(), "evidently": snapshot.dict()}, indent=2, default=str)
    )


def evidently_report(
    ref: Any, cur: Any, kinds: dict[str, str], config: dict[str, Any], overrides: dict[str, Any], share: float
) -> Any:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        numeric, categorical = _tests(config, "numeric"), _tests(config, "categorical")
        definition = DataDefinition(
            numerical_columns=[c for c, k in kinds.items() if k == "numerical"],
            categorical_columns=[c for c, k in kinds.items() if k == "categorical"],
        )
        preset = DataDriftPreset(
            columns=list(kinds),
            drift_share=share,
            num_method=numeric["method"],
            num_threshold=float(numeric["threshold"]),
            cat_method=categorical["method"],
            cat_threshold=float(categorical["threshold"]),
            per_column_method={
                c: str(o["method"]) for c, o in overrides.items() if c in kinds and "method" in o
            },
            per_column_threshold={
                c: float(o["threshold"]) for c, o in overrides.items() if c in kinds and "threshold" in o
            },
        )
        return Report([preset], include_tests=True).run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )


def column_drifts(document: dict[str, Any], kinds: dict[str, str]) -> list[ColumnDrift]:
    """Per-column method, threshold, score and verdict out of evidently's snapshot."""
    scores = {m["id"]: m.get("value") for m in document.get("metrics", [])}
    found: dict[str, ColumnDrift] = {}
    for test in document.get("tests", []):
        params = (test.get("metric_config") or {}).get("params") or {}
        if params.get("type") != "evidently:metric_v2:ValueDrift" or params.get("column") not in kinds:
            continue
        column = str(params["column"])
        score = scores.get((test.get("metric_config") or {}).get("metric_id"))
        found[column] = ColumnDrift(
            column=column,
            kind=kinds[column],
            method=str(params.get("method")),
            threshold=float(params.get("threshold") or 0),
            score=round(float(score), 6) if isinstance(score, int | float) else None,
            drifted=test.get("status") == "FAIL",
        )
    missing = sorted(set(kinds) - set(found))
    if missing:
        raise MlopsError(
            f"evidently: no drift test for column(s) {', '.join(missing)} (expected one per column)"
        )
    return [found[c] for c in kinds]


def measure(
    repo: Repo,
    registry: Any,
    env: str,
    models: list[str],
    since: str | None = None,
    reference: Path | None = None,
    out_dir: Path | None = None,
    keep: bool = True,
) -> list[DriftResult]:
    """Drift of each of `models` in `env` (default: every model with a version there), each
    result kept in the deployment's record log and on the registered model unless not `keep`."""
    repo.require_environment(env)
    chosen = models or sorted(
        m for (e, m), manifest in repo.manifests.items() if e == env and manifest.get("version") is not None
    )
    results = []
    for name in chosen:
        result = run(repo, registry, name, env, since, reference, out_dir)
        if keep:
            record(repo.root, registry, result)
        results.append(result)
    return results


def record(root: Path, registry: Any, result: DriftResult) -> None:
    """Append the result to the drift history; put its summary on the registered model."""
    summary = {k: v for k, v in result.to_dict().items() if k not in ("columns", "model", "environment")}
    RecordLog(root).note("drift", result.environment, result.model, summary)
    registry.set_model_tags(
        result.model,
        names.drift_tags(
            result.environment,
            result.status,
            result.severity,
            result.checked_at,
            [*result.drifted, *([PREDICTION] if result.prediction and result.prediction.drifted else [])],
            result.report_html,
        ),
    )


def to_markdown(results: list[DriftResult]) -> str:
    """The issue body: one section per deployment, the drifted columns first."""
    lines = ["### Drift", ""]
    for r in results:
        verdict = {STATUS_DRIFT: f"⚠️ **drift** ({r.severity})", STATUS_OK: "✅ no drift"}.get(
            r.status, f"… not enough data ({r.rows} of {r.min_rows} rows)"
        )
        lines += [f"**{r.model}** v{r.version} in **{r.environment}**: {verdict}", ""]
        if r.columns:
            lines += [
                f"{r.rows} logged rows against {r.reference_rows} training rows; "
                f"{len(r.drifted)} of {len(r.columns)} columns drifted "
                f"(dataset drift at a share of {r.drift_share:g}). Report: `{r.report_html}`",
                "",
                "| column | type | method | threshold | score | drifted |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            for c in sorted(r.columns, key=lambda c: (not c.drifted, c.column)):
                score = "-" if c.score is None else f"{c.score:.4g}"
                verdict = "yes" if c.drifted else "no"
                lines.append(
                    f"| {c.column} | {c.kind} | {c.method} | {c.threshold:g} | {score} | {verdict} |"
                )
            lines.append("")
    return "\n".join(lines)
