"""Champion/challenger: a candidate version against a baseline on the same evaluation data.

Metrics with deltas, pass/fail against the thresholds in models/<model>/model.yaml and
a regression check of the primary metric, PNG plots (a binary classifier: ROC,
precision-recall, confusion matrix; a multiclass one: its confusion matrix; a regressor:
predicted against actual, and its residuals), as markdown fit for a pull-request comment and
as JSON. The result is also written to the candidate's version tags, where `mlops facts` reads it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import tags as names
from ..core import tasks
from ..core.config import Repo
from ..core.errors import MlopsError
from ..core.metrics import of_task, positive_scores
from ..core.tasks import LOWER_IS_BETTER, Task
from .client import Registry
from .lineage import PipelineOutputs


@dataclass
class Check:
    metric: str
    rule: str
    passed: bool


@dataclass
class Report:
    model: str
    candidate: int
    baseline: int | None
    baseline_ref: str | None
    metrics: dict[str, float]
    baseline_metrics: dict[str, float] | None
    checks: list[Check] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "baseline_ref": self.baseline_ref,
            "passed": self.passed,
            "metrics": self.metrics,
            "baseline_metrics": self.baseline_metrics,
            "note": self.note,
            "plots": self.plots,
            "checks": [{"metric": c.metric, "rule": c.rule, "passed": c.passed} for c in self.checks],
        }


def _outputs(registry: Registry, model: str, version: int, features: Any) -> Any:
    """What the version answers for `features`: class probabilities, or predictions."""
    import mlflow.pyfunc
    import numpy as np

    loaded = registry._call(
        f"load {model} v{version}", mlflow.pyfunc.load_model, f"models:/{model}/{version}"
    )
    out = loaded.predict(features)
    return np.asarray(out.to_numpy() if hasattr(out, "to_numpy") else out, dtype=float)


def judge(
    definition: dict[str, Any], metrics: dict[str, float], baseline: dict[str, float] | None
) -> list[Check]:
    checks = []
    for name, bound in definition["metrics"]["thresholds"].items():
        if name not in metrics:
            checks.append(Check(name, "a metric the report computes", False))
            continue
        if "min" in bound:
            checks.append(Check(name, f">= {bound['min']}", metrics[name] >= bound["min"]))
        if "max" in bound:
            checks.append(Check(name, f"<= {bound['max']}", metrics[name] <= bound["max"]))
    primary = definition["metrics"]["primary"]
    tolerance = float(definition["metrics"].get("max_regression", 0.0))
    if baseline is not None and primary in metrics:
        if primary in LOWER_IS_BETTER:
            ok = metrics[primary] <= baseline[primary] + tolerance
            rule = f"no rise over baseline {baseline[primary]:.4f} beyond {tolerance}"
        else:
            ok = metrics[primary] >= baseline[primary] - tolerance
            rule = f"no drop under baseline {baseline[primary]:.4f} beyond {tolerance}"
        checks.append(Check(primary, rule, ok))
    return checks


def _plots(
    out_dir: Path,
    task: Task,
    y: Any,
    outputs: tuple[Any, Any | None],
    classes: list[Any] | None,
    labels: tuple[str, str],
) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if task is Task.BINARY:
        truth = y if classes is None else (y == classes[-1]).astype(int)
        baseline = positive_scores(outputs[1]) if outputs[1] is not None else None
        return _binary_plots(out_dir, truth, positive_scores(outputs[0]), baseline, labels)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    if task is Task.MULTICLASS:
        predicted = np.asarray(classes)[np.asarray(outputs[0]).argmax(axis=1)]
        fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
        ConfusionMatrixDisplay.from_predictions(y, predicted, labels=classes, ax=ax, colorbar=False)
        ax.set_title(f"Confusion matrix, {labels[0]}")
        return {"confusion": _saved(fig, out_dir / "confusion.png")}
    predicted = np.asarray(outputs[0]).reshape(len(y))
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.scatter(y, predicted, s=6, alpha=0.5, label=labels[0])
    if outputs[1] is not None:
        ax.scatter(y, np.asarray(outputs[1]).reshape(len(y)), s=6, alpha=0.5, label=labels[1])
    ends = [float(np.min(y)), float(np.max(y))]
    ax.plot(ends, ends, color="grey", linewidth=1)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title("Predicted against actual")
    ax.legend()
    paths = {"predicted": _saved(fig, out_dir / "predicted.png")}
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.hist(predicted - np.asarray(y, dtype=float), bins=40)
    ax.set_xlabel("predicted - actual")
    ax.set_title(f"Residuals, {labels[0]}")
    paths["residuals"] = _saved(fig, out_dir / "residuals.png")
    return paths


def _saved(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path.name


def _binary_plots(
    out_dir: Path, y: Any, candidate: Any, baseline: Any | None, labels: tuple[str, str]
) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    paths = {}
    for kind, display in (("roc", RocCurveDisplay), ("pr", PrecisionRecallDisplay)):
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        display.from_predictions(y, candidate, name=labels[0], ax=ax)
        if baseline is not None:
            display.from_predictions(y, baseline, name=labels[1], ax=ax)
        ax.set_title("ROC curve" if kind == "roc" else "Precision-recall curve")
        fig.tight_layout()
        fig.savefig(out_dir / f"{kind}.png", metadata={"Software": None})
        plt.close(fig)
        paths[kind] = f"{kind}.png"
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ConfusionMatrixDisplay.from_predictions(y, (candidate >= 0.5).astype(int), ax=ax, colorbar=False)
    ax.set_title(f"Confusion matrix, {labels[0]}")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion.png", metadata={"Software": None})
    plt.close(fig)
    paths["confusion"] = "confusion.png"
    return paths


def build(
    repo: Repo, registry: Registry, model: str, candidate: str, baseline: str | None, out_dir: Path
) -> Report:
    import pandas as pd

    definition = repo.require_model(model)
    outputs = PipelineOutputs(model, repo.root)
    if not outputs.test_data.is_file():
        raise MlopsError(
            f"{outputs.test_data.relative_to(repo.root)}: missing (expected the evaluation data: "
            "run `make train` first)"
        )
    cand = registry.version(model, candidate)
    base = None
    note = ""
    if baseline is not None:
        base = (
            registry.alias_version(model, baseline.lstrip("@"))
            if not baseline.isdigit()
            else registry.version(model, baseline)
        )
        if base is None:
            note = (
                f"No baseline: no version of {model} has the alias @{baseline.lstrip('@')}; "
                "judged against the thresholds alone."
            )
    else:
        note = "No baseline asked for; judged against the thresholds alone."
    task = tasks.of(definition)
    target = definition.get("target_column", "churned")
    test = pd.read_csv(outputs.test_data)
    y = test[target].to_numpy()
    features = tasks.features_of(definition, test)
    classes = names.classes_of(dict(cand.tags))
    cand_out = _outputs(registry, model, int(cand.version), features)
    metrics = of_task(task, y, cand_out, classes)
    base_out = _outputs(registry, model, int(base.version), features) if base is not None else None
    # a baseline's own classes (a class the candidate added or dropped leaves it unjudged)
    base_classes = names.classes_of(dict(base.tags)) if base is not None else None
    base_metrics = of_task(task, y, base_out, base_classes or classes) if base_out is not None else None
    labels = (f"v{cand.version} (candidate)", f"v{base.version} (baseline)" if base is not None else "")
    report = Report(
        model,
        int(cand.version),
        int(base.version) if base is not None else None,
        baseline if base is not None else None,
        metrics,
        base_metrics,
        judge(definition, metrics, base_metrics),
        note=note,
    )
    report.plots = _plots(out_dir, task, y, (cand_out, base_out), classes, labels)
    return report


def markdown(report: Report) -> str:
    verdict = "✅ **passed**" if report.passed else "❌ **failed**"
    against = (
        f"baseline v{report.baseline} (`@{report.baseline_ref.lstrip('@')}`)"
        if report.baseline and report.baseline_ref and not report.baseline_ref.isdigit()
        else (f"baseline v{report.baseline}" if report.baseline else "the thresholds alone")
    )
    lines = [
        f"### Champion/challenger: `{report.model}` v{report.candidate} against {against}: {verdict}",
        "",
    ]
    if report.note:
        lines += [f"> {report.note}", ""]
    lines += ["| metric | candidate | baseline | delta |", "| --- | ---: | ---: | ---: |"]
    for name, value in report.metrics.items():
        base = report.baseline_metrics.get(name) if report.baseline_metrics else None
        delta = f"{value - base:+.4f}" if base is not None else "n/a"
        lines.append(f"| {name} | {value:.4f} | {'n/a' if base is None else f'{base:.4f}'} | {delta} |")
    lines += ["", "| check | rule | result |", "| --- | --- | --- |"]
    for check in report.checks:
        lines.append(f"| {check.metric} | {check.rule} | {'pass' if check.passed else '**FAIL**'} |")
    lines += ["", " ".join(f"![{k}]({v})" for k, v in report.plots.items()), ""]
    return "\n".join(lines)


def record(registry: Registry, report: Report, text: str, folder: Path | None = None) -> None:
    """Write the verdict onto the candidate version, where facts and evidence read it; with
    `folder`, its files (report.md, report.json, plots) go into the version's run as well."""
    if folder is not None:
        run_id = registry.version(report.model, report.candidate).run_id
        registry.log_artifacts(run_id, folder, names.REPORT)
    registry.set_tags(
        report.model,
        report.candidate,
        names.report_tags(
            report.passed, report.baseline, report.metrics, hashlib.sha256(text.encode()).hexdigest()
        ),
    )


def write(
    repo: Repo,
    registry: Registry,
    model: str,
    candidate: str,
    baseline: str | None,
    out_dir: Path | None = None,
) -> tuple[Report, str, Path]:
    """Build one report, write it (report.md, report.json, the plots) to `out_dir` (default
    reports/<model>/v<N>/), record it on the version, and add it to the CI job's summary when
    there is one ($GITHUB_STEP_SUMMARY). Returns the report, its markdown and its folder."""
    import os

    target = out_dir or repo.root / "reports" / model / f"v{candidate.lstrip('@')}"
    result = build(repo, registry, model, candidate, baseline, target)
    text = markdown(result)
    (target / "report.md").write_text(text)
    (target / "report.json").write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    record(registry, result, text, target)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return result, text, target
