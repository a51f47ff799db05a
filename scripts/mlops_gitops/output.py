"""Printing for people (rich tables, one-line errors on stderr) and for machines (JSON)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
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


def error(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
