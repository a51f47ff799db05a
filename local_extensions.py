"""Jinja extensions of the template (template-only: not copied into generated repositories).

`TemplateRoot` tells the hooks where the template's own files are. cookiecutter's `_repo_dir` is
relative for a local template (and the hooks run inside the new project, so they cannot resolve
it), and cruft sets no `_repo_dir` at all. This module is imported from the template root
(cookiecutter and cruft put that root on `sys.path`), so its own `__file__` is the one reliable
anchor: under cruft it is cruft's clone at the requested commit, which is what `cruft update`
needs.

`CheckedAnswers` checks every answer once all are given, before anything is written: the
template's last variable, `__checked`, is rendered through its `checked_answers` filter (a
private variable: cookiecutter renders it after the questions and never asks it). Each bad
answer is one line on stderr (answer, value, rule) and generation stops with exit 1, without a
traceback and without a file written. cookiecutter has no per-question check to hook into.
Placeholder owners (the template's `@acme/...`) are accepted with a one-line warning:
`mlops validate` flags them until they are replaced.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from jinja2.ext import Extension

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
GITHUB_OWNER = re.compile(r"^@[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9_.-]+)?$")
RUNNER_LABEL = re.compile(r"^[A-Za-z0-9_.-]+$")
TARGETS = ("local", "kserve")
MAX_PURPOSE = 200
URI_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "file")


def split_list(value: str) -> list[str]:
    return [part.strip() for part in str(value).split(",") if part.strip()]


def problems(ctx: dict) -> list[str]:
    out: list[str] = []

    def bad(key: str, expected: str) -> None:
        out.append(f"cookiecutter answer {key}={ctx.get(key)!r}: expected {expected}")

    if not str(ctx.get("project_name", "")).strip():
        bad("project_name", "a non-empty name")
    for key in ("project_slug", "model_name"):
        if not DNS_1123_LABEL.match(str(ctx.get(key, ""))):
            bad(
                key,
                "a DNS-1123 label: lower-case letters, digits and '-', 1-63 characters, "
                "starting and ending with a letter or digit",
            )
    purpose = str(ctx.get("model_purpose", ""))
    if "\n" in purpose or "\r" in purpose or len(purpose) > MAX_PURPOSE:
        bad("model_purpose", f"one line of at most {MAX_PURPOSE} characters (empty: a TODO to fill in)")
    if not GITHUB_OWNER.match(str(ctx.get("owning_team", "")).strip()):
        bad("owning_team", "a GitHub user or team such as @org or @org/team")
    approvers = split_list(ctx.get("production_approvers", ""))
    if not approvers:
        bad("production_approvers", "at least one GitHub user or team, comma-separated")
    elif not all(GITHUB_OWNER.match(a) for a in approvers):
        bad("production_approvers", "comma-separated GitHub users or teams such as @org/team")
    uri = str(ctx.get("mlflow_tracking_uri", "")).strip()
    scheme = uri.split(":", 1)[0].split("+", 1)[0] if ":" in uri else ""
    if scheme not in URI_SCHEMES:
        bad("mlflow_tracking_uri", f"a URI with a scheme among {', '.join(URI_SCHEMES)}")
    if ctx.get("deployment_target") not in TARGETS:
        bad("deployment_target", f"one of {', '.join(TARGETS)}")
    labels = split_list(ctx.get("gpu_runner_labels", ""))
    if not labels or not all(RUNNER_LABEL.match(label) for label in labels):
        bad("gpu_runner_labels", "comma-separated runner labels such as 'self-hosted, linux, gpu'")
    elif "self-hosted" not in labels:
        bad("gpu_runner_labels", "a list that includes 'self-hosted' (GPU jobs run on your own runners)")
    if not re.match(r"^3\.(1[1-9]|[2-9][0-9])$", str(ctx.get("python_version", ""))):
        bad("python_version", "a Python version 3.11 or newer, such as 3.12")
    return out


PLACEHOLDER_OWNER = "@acme/"


def placeholders(ctx: dict) -> list[str]:
    """The owner answers that still name the template's placeholder organisation."""
    found = []
    for key in ("owning_team", "production_approvers"):
        if PLACEHOLDER_OWNER in str(ctx.get(key, "")):
            found.append(
                f"cookiecutter answer {key}={ctx.get(key)!r}: the template's placeholder "
                "(expected your GitHub team; `mlops validate` flags it until it is replaced)"
            )
    return found


def checked_answers(ctx: Any) -> str:
    """The `checked_answers` filter: "ok", or one line per bad answer on stderr and exit 1."""
    answers = dict(ctx)
    found = problems(answers)
    for line in found:
        print(f"error: {line}", file=sys.stderr)
    if found:
        raise SystemExit(1)
    for line in placeholders(answers):
        print(f"warning: {line}", file=sys.stderr)
    return "ok"


class TemplateRoot(Extension):
    def __init__(self, environment):  # type: ignore[no-untyped-def]
        super().__init__(environment)
        environment.globals["template_root"] = str(Path(__file__).resolve().parent)


class CheckedAnswers(Extension):
    def __init__(self, environment):  # type: ignore[no-untyped-def]
        super().__init__(environment)
        environment.filters["checked_answers"] = checked_answers
