"""Check every answer before anything is written.

Each bad answer is reported on one line (answer, value, rule) and the hook exits 1;
cookiecutter then removes the half-made project directory, so nothing is created.
Only the standard library is used: the hook runs in whatever Python runs cookiecutter.
"""

from __future__ import annotations

import json
import re
import sys

# Rendered by cookiecutter. A JSON object never contains three double quotes in a row outside
# an escape and ends with "}", so any answer survives this raw string.
CONTEXT = json.loads(r"""{{ cookiecutter | jsonify }}""")

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


def main() -> int:
    found = problems(CONTEXT)
    for line in found:
        print(f"error: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
