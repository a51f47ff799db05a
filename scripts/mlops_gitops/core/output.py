"""Printing for people (rich tables, one-line errors on stderr) and for machines (JSON)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

OUTPUT_FORMATS = ("table", "json")
# CI logs (GitHub Actions, act) get plain lines, not animated spinners.
_CI = bool(os.environ.get("CI") or os.environ.get("GITHUB_ACTIONS"))
stdout = Console(
    soft_wrap=True,
    width=None if sys.stdout.isatty() and not _CI else 200,
    force_terminal=False if _CI else None,
)
stderr = Console(
    stderr=True,
    soft_wrap=True,
    force_terminal=False if _CI else None,
    force_interactive=False if _CI else None,
)


def emit_json(kind: str, payload: dict[str, Any]) -> None:
    """A versioned JSON result on stdout."""
    document = {"apiVersion": "mlops-gitops/v1", "kind": kind, **payload}
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*("" if cell is None else str(cell) for cell in row))
    stdout.print(out)


@contextlib.contextmanager
def progress(title: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (plain, with no animation, in CI logs); yields advance(n)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=not _CI, disable=_CI) as bar:
        task = bar.add_task(title, total=total)
        yield lambda n: bar.advance(task, n)


def error(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)


def warn(message: str) -> None:
    """One line on stderr that needs attention but stops nothing."""
    stderr.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False)
