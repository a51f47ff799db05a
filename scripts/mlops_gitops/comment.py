"""`mlops comment`: one pull-request comment per purpose, updated in place, not piled up.

The comment carries a hidden marker (`<!-- mlops:NAME -->`); a later run finds the comment
with the same marker and edits it. GitHub is reached through `gh api` (authenticated with
GH_TOKEN in workflows), behind the small GitHub interface below so tests can stand in for it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any, Protocol

from .errors import MlopsError


class GitHub(Protocol):
    def get(self, path: str) -> Any: ...
    def send(self, method: str, path: str, body: dict[str, Any]) -> Any: ...


class GhCli:
    """GitHub's REST API through the `gh` command."""

    def __init__(self) -> None:
        if shutil.which("gh") is None:
            raise MlopsError("gh: not installed (expected the GitHub CLI, authenticated with GH_TOKEN)")

    def _call(self, args: list[str], stdin: str | None = None) -> Any:
        proc = subprocess.run(["gh", "api", *args], input=stdin, capture_output=True, text=True)
        if proc.returncode != 0:
            raise MlopsError(f"gh api {args[-1]}: {(proc.stderr or proc.stdout).strip().splitlines()[0]}")
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def get(self, path: str) -> Any:
        return self._call(["--paginate", path])

    def send(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return self._call(["--method", method, "--input", "-", path], json.dumps(body))


def upsert(github: GitHub, repository: str, number: int, name: str, body: str) -> tuple[str, int]:
    """Create or update the comment marked `name` on pull request `number`; returns (action, id)."""
    marker = f"<!-- mlops:{name} -->"
    text = f"{marker}\n{body}"
    comments = github.get(f"repos/{repository}/issues/{number}/comments") or []
    mine = [c for c in comments if marker in (c.get("body") or "")]
    if mine:
        comment_id = int(mine[0]["id"])
        github.send("PATCH", f"repos/{repository}/issues/comments/{comment_id}", {"body": text})
        return "updated", comment_id
    created = github.send("POST", f"repos/{repository}/issues/{number}/comments", {"body": text})
    return "created", int(created["id"])


def upsert_issue(github: GitHub, repository: str, name: str, title: str, body: str) -> tuple[str, int]:
    """Open the issue marked `name`, or update the open one this marker already names; a closed
    one stays closed and a new one is opened (a new incident). Returns (action, number)."""
    marker = f"<!-- mlops:{name} -->"
    text = f"{marker}\n{body}"
    issues = github.get(f"repos/{repository}/issues?state=open&per_page=100") or []
    mine = [i for i in issues if marker in (i.get("body") or "") and "pull_request" not in i]
    if mine:
        number = int(mine[0]["number"])
        github.send("PATCH", f"repos/{repository}/issues/{number}", {"title": title, "body": text})
        return "updated", number
    created = github.send("POST", f"repos/{repository}/issues", {"title": title, "body": text})
    return "opened", int(created["number"])


def dispatch(github: GitHub, repository: str, workflow: str, ref: str, inputs: dict[str, str]) -> None:
    """Start a workflow_dispatch run of `workflow` (file name) on `ref`."""
    github.send(
        "POST", f"repos/{repository}/actions/workflows/{workflow}/dispatches", {"ref": ref, "inputs": inputs}
    )
