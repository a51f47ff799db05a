"""`mlops feedback`: ground truth joined to logged predictions, live performance per version.

Labels arrive later than predictions (a customer churns, or does not, weeks after the
score). A labels file (CSV with `request_id,label`, or JSON lines with those keys; a label is a
class, as the table has it, or a classifier's 0/1, or a regressor's number) is joined
to the inference log by request id; every logged row of a request gets that request's label
(a batch request takes one label per row only when the file gives `row`). Live performance
is the model's `drift.live_performance.metric` (its task's default otherwise: core.tasks),
computed with the same code the pipeline's evaluation uses (`metrics.of_task`), per version
and per day, and compared with the version's
registered value of that metric: a drop beyond `max_drop` is a finding, as drift is (concept
drift: the inputs may look the same while what they mean has moved).

The labels are also judged as drift judges a column (`target`): their distribution against the
target column of the serving version's training data (the same reference `mlops drift` reads),
with the method and threshold of `drift:` for a number (a regressor) or a class (a classifier),
`drift.columns.target` overriding them. The world's answers moving (prior shift) is a finding
beside the live metric; it does not change the verdict.

Each run is appended to `<state>/feedback/<env>/<model>.jsonl` (the trend over time) and its
verdict recorded as the registered model's tags `mlops.performance.<env>.*`.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..core import inference_log, state, tasks
from ..core import tags as names
from ..core.config import Repo
from ..core.errors import MlopsError
from ..core.pages import display, report_stem, title
from ..core.records import RecordLog, utcnow
from ..core.tasks import LOWER_IS_BETTER, Task

Label = int | float | str

MIN_LABELS = 50


@dataclass
class Slice:
    version: int
    day: str  # YYYY-MM-DD, or "all"
    rows: int
    value: float | None


@dataclass
class FeedbackResult:
    model: str
    environment: str
    metric: str
    max_drop: float
    status: Verdict
    labels: int  # labels read
    joined: int  # rows with a label and a logged prediction
    unmatched: int  # labels whose request id is not in the log
    skipped_lines: int
    checked_at: str
    versions: list[dict[str, Any]] = field(default_factory=list)  # per version: rows, live, registered, drop
    target: dict[str, Any] | None = None  # the labels against the training target (drift's test)
    target_note: str = ""  # why the labels were not judged
    by_day: list[Slice] = field(default_factory=list)
    report_html: str = ""
    report_json: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def label_of(value: Any) -> Label:
    """A label as written: a whole number (`1`, `1.0`) as an int, another number as a float, else
    the text (a class such as `gold`)."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


class LabelRule:
    """Which labels a model's ground truth may hold: a regressor's numbers; a classifier's
    classes (the version's, recorded at registration), or 0/1 for a binary one registered
    without them."""

    def __init__(self, task: Task, classes: list[Any] | None):
        self.task = task
        self.classes = [label_of(c) for c in classes] if classes and task.classifies else None

    def accepts(self, label: Label) -> bool:
        if self.task is Task.REGRESSION or (self.classes is None and self.task is Task.MULTICLASS):
            return isinstance(label, int | float)
        if self.classes is None:
            return label in (0, 1)
        return label in self.classes

    @property
    def expected(self) -> str:
        if self.task is Task.REGRESSION:
            return "request_id and a numeric label"
        if self.classes is None:
            return "request_id and a numeric label" + (", 0 or 1" if self.task is Task.BINARY else "")
        return f"request_id and a label among {', '.join(map(str, self.classes))}"


def read_labels(path: Path, rule: LabelRule | None = None) -> dict[str, list[Label]]:
    """{request_id: [label per row]} from CSV (request_id,label[,row]) or JSON lines; each label
    as `rule` allows (any label without one)."""
    if not path.is_file():
        raise MlopsError(f"{path}: no such labels file (expected CSV request_id,label or JSON lines)")
    rows: list[dict[str, Any]] = []
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".jsonl", ".json"):
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise MlopsError(f"{path}:{number}: not JSON (expected one object per line)") from None
    else:
        try:
            rows = list(csv.DictReader(text.splitlines()))
        except csv.Error as exc:
            raise MlopsError(f"{path}: not CSV request_id,label ({exc})") from None
    labels: dict[str, dict[int, Label]] = defaultdict(dict)
    for number, row in enumerate(rows, 1):
        try:
            label, index = str(row["label"]), str(row.get("row") or 0)
            if len(label) > 32 or len(index) > 12:
                raise ValueError("too long")
            if not label.strip():
                raise ValueError("empty")
            value = label_of(label)
            if rule is not None and not rule.accepts(value):
                raise ValueError("not a label of the model")
            labels[str(row["request_id"])][int(index)] = value
        except (KeyError, ValueError, TypeError, OverflowError, AttributeError):
            shown = repr(row)[:120]
            expected = rule.expected if rule is not None else "request_id and a label"
            raise MlopsError(f"{path}: record {number}: {shown} (expected {expected})") from None
    return {rid: [by_row[i] for i in sorted(by_row)] for rid, by_row in labels.items()}


def _output(output: Any) -> Any:
    """One logged output as numbers: a classifier's probabilities, or a regressor's value."""
    if isinstance(output, list):
        return [float(v) for v in output]
    if isinstance(output, dict):
        return [float(v) for v in output.values()]
    return float(output)


def _score(output: Any) -> float:
    """The positive class's score from one logged output: [p0, p1] rows, or a scalar."""
    if isinstance(output, list):
        return float(output[-1])
    if isinstance(output, dict):
        return float(list(output.values())[-1])
    return float(output)


class Verdict(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # a version's live metric dropped beyond max_drop
    INSUFFICIENT = "insufficient-data"  # too few labelled rows (or one class only) to judge


Joined = dict[int, list[tuple[str, Label, Any]]]  # version -> (day, label, output) per labelled row


def join(entries: list[inference_log.Entry], labels: dict[str, list[Label]]) -> tuple[Joined, set[str], int]:
    """Each labelled row beside the prediction the log holds for it (answered requests only: a
    failed request predicted nothing), the request ids joined, and how many did not match."""
    joined: Joined = defaultdict(list)
    seen: set[str] = set()
    skipped = 0
    for entry in entries:
        rid = entry.request_id
        if rid not in labels or not entry.answered:
            continue
        truth, outputs = labels[rid], entry.outputs
        try:
            if not isinstance(outputs, list):
                raise ValueError("outputs")
            if len(truth) == 1 and len(outputs) > 1:
                truth = truth * len(outputs)
            day = entry.at[:10]
            pairs = [(day, label, _output(out)) for label, out in zip(truth, outputs, strict=True)]
        except (ValueError, TypeError, IndexError):  # rows that do not match, an unreadable output
            skipped += 1
            continue
        seen.add(rid)
        joined[entry.version].extend(pairs)
    return joined, seen, skipped


def run(
    repo: Repo, registry: Any, model: str, env: str, labels_file: Path, out_dir: Path | None = None
) -> FeedbackResult:
    repo.require_environment(env)  # a mistyped environment is an error, not "not enough data"
    definition = repo.require_model(model)
    task = tasks.of(definition)
    live = (definition.get("drift") or {}).get("live_performance") or {
        "metric": tasks.DEFAULTS[task].live_metric,
        "max_drop": 0.05,
    }
    labels = read_labels(labels_file, label_rule(registry, model, env, task))
    log = inference_log.read(state.inference_log(repo.root, env, model))
    joined, seen, skipped = join(log.entries, labels)
    result = FeedbackResult(
        model=model,
        environment=env,
        metric=str(live["metric"]),
        max_drop=float(live["max_drop"]),
        status=Verdict.INSUFFICIENT,
        labels=len(labels),
        joined=sum(len(v) for v in joined.values()),
        unmatched=len(set(labels) - seen),
        skipped_lines=log.skipped + skipped,
        checked_at=utcnow(),
    )
    judge(result, joined, registry, task)
    labelled = [r[1] for rows in joined.values() for r in rows]
    result.target, result.target_note = target_drift(repo, registry, model, env, labelled, task)
    if result.versions:
        write_report(repo.root, result, out_dir or state.feedback_reports(repo.root, env, model))
    return result


TARGET = "target"


def target_drift(
    repo: Repo, registry: Any, model: str, env: str, labels: list[Label], task: Task
) -> tuple[dict[str, Any] | None, str]:
    """The joined labels against the training data's target, as `mlops drift` tests a column;
    (None, why) when they cannot be judged."""
    from . import drift
    from .logsample import sample_csv

    definition = repo.require_model(model)
    config = definition.get("drift") or {}
    if len(labels) < MIN_LABELS:
        return None, f"{len(labels)} labelled rows joined (expected at least {MIN_LABELS})"
    target = definition.get("target_column")
    version = registry.aliases().get(model, {}).get(env)
    try:
        reference = drift.reference_data(repo, registry, model, env, version)
        frame, _ = sample_csv(reference, int(config.get("sample_rows", drift.SAMPLE_ROWS)))
    except MlopsError as exc:
        return None, str(exc)
    if not target or target not in frame.columns:
        return None, f"{reference.name}: no target column {target!r} to compare the labels with"
    import pandas as pd

    kind = "numerical" if task is Task.REGRESSION else "categorical"
    cast = float if kind == "numerical" else str
    ref = pd.DataFrame({TARGET: [cast(label_of(v)) for v in frame[target]]})
    cur = pd.DataFrame({TARGET: [cast(v) for v in labels]})
    overrides = {TARGET: (config.get("columns") or {}).get(TARGET) or {}}
    snapshot = drift.evidently_report(ref, cur, {TARGET: kind}, config, overrides, 1.0)
    (found,) = drift.column_drifts(snapshot.dict(), {TARGET: kind})
    return {**asdict(found), "rows": len(labels), "reference_rows": len(frame)}, ""


def label_rule(registry: Any, model: str, env: str, task: Task) -> LabelRule:
    """The labels the version serving in `env` knows (its classes), for reading ground truth."""
    version = registry.aliases().get(model, {}).get(env) if task.classifies else None
    classes = names.classes_of(dict(registry.version(model, version).tags)) if version is not None else None
    return LabelRule(task, classes)


def live_value(
    task: Task, metric: str, labels: list[Label], outputs: list[Any], classes: list[Any] | None
) -> float | None:
    """`metric` of a version's answers on labelled rows, as the pipeline's evaluation measures it;
    None with too few rows, one class only, or a label the version does not know."""
    from ..core.metrics import of_task

    if len(labels) < MIN_LABELS or (task.classifies and len(set(labels)) < 2):
        return None  # too few, or one class only: the metric means nothing yet
    known = [label_of(c) for c in classes] if classes is not None else None
    try:
        if task is Task.REGRESSION:
            found = of_task(task, [float(v) for v in labels], outputs)
        elif task is Task.MULTICLASS:
            if known is None or not set(labels) <= set(known):
                return None
            found = of_task(task, labels, outputs, known)
        else:
            truth = [int(v == known[-1]) for v in labels] if known is not None else labels
            found = of_task(task, truth, [_score(o) for o in outputs])
    except (TypeError, ValueError):  # answers of another shape than the task's
        return None
    value = found.get(metric)
    return None if value is None else float(value)


def judge(result: FeedbackResult, joined: Joined, registry: Any, task: Task = Task.BINARY) -> None:
    """Each version's live metric against its registered one, overall and per day; the verdict."""
    degraded = False
    lower = result.metric in LOWER_IS_BETTER
    for version, rows in sorted(joined.items()):
        tags = dict(registry.version(result.model, version).tags)
        registered = names.metrics_of(tags).get(result.metric)
        classes = names.classes_of(tags)

        def value(rows: list[tuple[str, Label, Any]], classes: list[Any] | None = classes) -> float | None:
            return live_value(task, result.metric, [r[1] for r in rows], [r[2] for r in rows], classes)

        now_value = value(rows)
        drop = (
            round((now_value - float(registered)) if lower else (float(registered) - now_value), 6)
            if registered is not None and now_value is not None
            else None
        )
        bad = drop is not None and drop > result.max_drop
        degraded |= bad
        result.versions.append(
            {
                "version": version,
                "rows": len(rows),
                "live": now_value,
                "registered": registered,
                "drop": drop,
                "degraded": bad,
            }
        )
        for day in sorted({r[0] for r in rows}):
            day_rows = [r for r in rows if r[0] == day]
            result.by_day.append(Slice(version, day, len(day_rows), value(day_rows)))
    if any(v["live"] is not None for v in result.versions):
        result.status = Verdict.DEGRADED if degraded else Verdict.OK


def write_report(root: Path, result: FeedbackResult, folder: Path) -> None:
    """JSON, and a self-contained HTML page (a table and the live metric per day as an inline
    PNG), named and headed by model, environment and versions."""
    import base64
    import html as markup
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    versions = [int(v["version"]) for v in result.versions]
    stem = report_stem("feedback", result.model, result.environment, versions, result.checked_at)
    heading = title(result.model, result.environment, versions, f"Live {result.metric}")
    folder.mkdir(parents=True, exist_ok=True)
    raw, page = folder / f"{stem}.json", folder / f"{stem}.html"
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    for v in result.versions:
        days = [s for s in result.by_day if s.version == v["version"] and s.value is not None]
        if days:
            values = [float(s.value) for s in days if s.value is not None]
            ax.plot([s.day for s in days], values, marker="o", label=f"v{v['version']} live")
        if v["registered"] is not None:
            ax.axhline(
                float(v["registered"]), linestyle="--", linewidth=1, label=f"v{v['version']} registered"
            )
    ax.set_title(heading)
    ax.set_ylabel(result.metric)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", metadata={"Software": None})
    plt.close(fig)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{markup.escape(str(c))}</td>"
            for c in (
                f"v{v['version']}",
                v["rows"],
                v["live"],
                v["registered"],
                v["drop"],
                "DEGRADED" if v["degraded"] else ("ok" if v["live"] is not None else "too few"),
            )
        )
        + "</tr>"
        for v in result.versions
    )
    summary = (
        f"{result.status}: {result.joined} labelled rows joined, {result.unmatched} label(s) without a "
        f"logged prediction; tolerated drop {result.max_drop}; checked {result.checked_at}."
    )
    target = result.target
    summary += (
        f" The labels against the training target: {'drift' if target['drifted'] else 'no drift'} "
        f"({target['method']} {target['score']}, threshold {target['threshold']})."
        if target
        else f" The labels against the training target: not judged ({result.target_note})."
    )
    page.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{markup.escape(heading)}</title></head>"
        '<body style="font:15px/1.4 system-ui,sans-serif;margin:16px">'
        f'<h1 style="font-size:20px">{markup.escape(heading)}</h1><p>{markup.escape(summary)}</p>'
        '<table border="1" cellpadding="4" style="border-collapse:collapse"><tr><th>version</th>'
        "<th>labelled rows</th><th>live</th><th>registered</th><th>drop</th><th>verdict</th></tr>"
        f"{rows}</table>"
        f'<p><img alt="{markup.escape(heading)} per day" '
        f'src="data:image/png;base64,{base64.b64encode(png.getvalue()).decode()}"></p></body></html>\n',
        encoding="utf-8",
    )
    result.report_html, result.report_json = display(root, page), display(root, raw)
    raw.write_text(
        json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )


def record(root: Path, registry: Any, result: FeedbackResult) -> None:
    entry = {k: v for k, v in result.to_dict().items() if k not in ("model", "environment")}
    RecordLog(root).note("feedback", result.environment, result.model, entry)
    worst = max((v for v in result.versions if v["drop"] is not None), key=lambda v: v["drop"], default=None)
    registry.set_model_tags(
        result.model,
        names.performance_tags(
            result.environment,
            result.status,
            result.metric,
            None if worst is None else worst["live"],
            None if worst is None else worst["drop"],
            result.checked_at,
        ),
    )
