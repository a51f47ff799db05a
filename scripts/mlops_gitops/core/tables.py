"""A team's own table, read and judged before `mlops model add --data` writes anything.

What it checks (each a one-line error naming the file, the column and what was expected): the
file is a CSV or Parquet table with rows, the target column exists and fits a task (the one
asked for, or the one inferred: core.tasks.infer), the id columns exist, and some column is
left to learn from. What it finds: each feature's kind (numeric or categorical, from the data),
and the columns a team may want to check for fairness (categorical ones with few values, and
numbers whose name suggests a person's attribute); it offers them and never picks one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import tasks
from .errors import MlopsError
from .tasks import Task

SUFFIXES = (".csv", ".parquet")
# Words in a column's name that hint at a person's protected attribute: shown as candidates only.
PERSONAL = re.compile(
    r"(^|_)(age|sex|gender|race|ethnic\w*|religion|disab\w*|marital|nationality|birth\w*)($|_)"
)
MAX_GROUPS = 12


@dataclass(frozen=True)
class Table:
    """What `model add --data` learned from a table."""

    path: Path
    rows: int
    target: str
    task: Task
    ids: list[str]
    numeric: list[str]
    categorical: list[str]
    classes: list[Any] = field(default_factory=list)
    sensitive_candidates: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "target": self.target,
            "task": self.task.value,
            "id_columns": self.ids,
            "features": {"numeric": self.numeric, "categorical": self.categorical},
            **({"classes": self.classes} if self.classes else {}),
            "sensitive_feature_candidates": self.sensitive_candidates,
        }


def read(path: Path, shown: str) -> Any:
    """The table at `path` as a DataFrame (`shown` names it in errors)."""
    import pandas as pd

    if path.suffix.lower() not in SUFFIXES:
        raise MlopsError(
            f"--data {shown}: a {path.suffix or 'file without suffix'} (expected .csv or .parquet)"
        )
    if not path.is_file():
        raise MlopsError(f"--data {shown}: no such file (expected a .csv or .parquet table)")
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MlopsError(f"--data {shown}: not a readable table ({first[:160]})") from None
    if frame.empty or len(frame.columns) == 0:
        raise MlopsError(f"--data {shown}: no rows (expected the table to learn from)")
    return frame


def judge(frame: Any, shown: str, target: str, task: Task | None, ids: list[str]) -> Table:
    """The table's task, features and candidates; MlopsError names the first problem."""
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise MlopsError(
            f"--target {target}: no such column in {shown} (expected one of {', '.join(columns[:12])})"
        )
    for column in ids:
        if column not in columns or column == target:
            raise MlopsError(
                f"--id {column}: no such column in {shown} besides the target (expected an id column)"
            )
    values = frame[target]
    try:
        found = tasks.infer(values) if task is None else task
    except ValueError as exc:
        raise MlopsError(f"--target {target}: {exc} in {shown}") from None
    problem = tasks.fits(found, values)
    if problem is not None:
        raise MlopsError(f"--task {found.short}: column {target!r} of {shown} has {problem}")
    features = [c for c in columns if c != target and c not in ids]
    if not features:
        raise MlopsError(
            f"--data {shown}: no column left to learn from (expected features beside the target)"
        )
    empty = [c for c in features if frame[c].isna().all()]
    if empty:
        raise MlopsError(f"--data {shown}: column {empty[0]!r} has no values (expected data in every column)")
    numeric = [
        c
        for c in features
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    categorical = [c for c in features if c not in numeric]
    candidates = [c for c in categorical if frame[c].nunique() <= MAX_GROUPS]
    candidates += [c for c in numeric if PERSONAL.search(c.lower())]
    classes = sorted(values.unique().tolist(), key=str) if found.classifies else []
    return Table(
        path=Path(shown),
        rows=len(frame),
        target=target,
        task=found,
        ids=list(ids),
        numeric=numeric,
        categorical=categorical,
        classes=[c.item() if hasattr(c, "item") else c for c in classes],
        sensitive_candidates=sorted(candidates),
    )


def is_url(text: str) -> bool:
    return "://" in text


def fetch(url: str, into: Path) -> Path:
    """A remote table downloaded once to look at (`dvc get-url`), before anything is tracked."""
    import subprocess

    name = Path(url.split("?", 1)[0].rstrip("/")).name or "table"
    dest = into / name
    proc = subprocess.run(["dvc", "get-url", url, str(dest)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise MlopsError(f"--data {url}: cannot be fetched ({said[:200]})")
    return dest


def place(root: Path, given: str, local: Path, source: str) -> str:
    """The table tracked by DVC at pipelines/<source>: a local file copied there and `dvc add`ed,
    a URL `dvc import-url`ed (DVC keeps where it came from). Idempotent: a re-run finds it
    there. Returns what DVC said it did, in one line."""
    import filecmp
    import shutil
    import subprocess

    dest = root / "pipelines" / source
    if dest.exists() and not filecmp.cmp(local, dest, shallow=False):
        raise MlopsError(f"pipelines/{source}: already exists with other content (expected a new model name)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if is_url(given):
        command = ["dvc", "import-url", "--force", given, str(dest.relative_to(root))]
    else:
        if not dest.exists():
            shutil.copyfile(local, dest.with_suffix(dest.suffix + ".part"))
            dest.with_suffix(dest.suffix + ".part").replace(dest)
        command = ["dvc", "add", str(dest.relative_to(root))]
    proc = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise MlopsError(f"pipelines/{source}: `{' '.join(command[:2])}` failed ({said[:200]})")
    return f"pipelines/{source}: tracked by DVC (pipelines/{source}.dvc)"
