"""GitHub, in one place: its REST API through the `gh` command, behind a small interface.

Everything this project asks of GitHub goes through here: a pull request's reviews (the gate's
approvals), one comment per purpose updated in place, one issue per alert, a workflow dispatch,
and opening a pull request for a pushed branch. Without an authenticated `gh` (a laptop, act)
`ready()` says so and callers print the next step instead. Tests stand in for GitHub with an
object that has `get` and `send`, or with a `gh` script on PATH (GitHub cannot be reached
from them).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Protocol

from .errors import MlopsError
from .gitinfo import push_credentials


class GitHub(Protocol):
    def get(self, path: str) -> Any: ...
    def send(self, method: str, path: str, body: dict[str, Any]) -> Any: ...


@functools.cache
def ready() -> bool:
    """`gh` is installed and authenticated (asked once per process)."""
    if shutil.which("gh") is None:
        return False
    return subprocess.run(["gh", "auth", "status"], capture_output=True).returncode == 0


class GhCli:
    """GitHub's REST API through the `gh` command."""

    def __init__(self) -> None:
        if shutil.which("gh") is None:
            raise MlopsError("gh: not installed (expected the GitHub CLI, authenticated with GH_TOKEN)")

    def _call(self, args: list[str], stdin: str | None = None) -> Any:
        proc = subprocess.run(["gh", "api", *args], input=stdin, capture_output=True, text=True)
        if proc.returncode != 0:
            said = (proc.stderr or proc.stdout).strip().splitlines()
            raise MlopsError(f"gh api {args[-1]}: {said[0] if said else f'exit {proc.returncode}'}")
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def get(self, path: str) -> Any:
        """Every page of a listing, as one list. `--paginate` alone prints one JSON array per
        page (not one document past the first page); `--slurp` wraps the pages in an array."""
        pages = self._call(["--paginate", "--slurp", path])
        if isinstance(pages, list) and all(isinstance(page, list) for page in pages):
            return [item for page in pages for item in page]
        return pages

    def send(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return self._call(["--method", method, "--input", "-", path], json.dumps(body))


def reviews(github: GitHub, repository: str, number: int) -> list[dict[str, Any]]:
    """The reviews of a pull request, oldest first."""
    found = github.get(f"repos/{repository}/pulls/{number}/reviews")
    return list(found or [])


def pull_head(github: GitHub, repository: str, number: int) -> str:
    """The commit a pull request's head is at now."""
    found = github.get(f"repos/{repository}/pulls/{number}")
    if isinstance(found, list) and len(found) == 1:  # one page, slurped
        found = found[0]
    sha = (found.get("head") or {}).get("sha") if isinstance(found, dict) else None
    if not isinstance(sha, str) or not sha:
        raise MlopsError(f"GitHub: pull request {repository}#{number}: no head commit in the answer")
    return sha


def team_members(github: GitHub, team: str) -> list[str]:
    """The logins of `org/team` (needs a token that can read the organization's teams)."""
    org, _, slug = team.partition("/")
    found = github.get(f"orgs/{org}/teams/{slug}/members")
    return [str(member["login"]) for member in found or []]


def upsert_comment(github: GitHub, repository: str, number: int, name: str, body: str) -> tuple[str, int]:
    """Create or update the comment marked `name` on pull request `number`; returns (action, id).

    The comment carries a hidden marker (`<!-- mlops:NAME -->`); a later run finds the comment
    with the same marker and edits it, so a pull request gets one comment per purpose."""
    marker = f"<!-- mlops:{name} -->"
    text = f"{marker}\n{body}"
    comments = github.get(f"repos/{repository}/issues/{number}/comments?per_page=100") or []
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


def open_pull_request(root: Path, base: str, branch: str, title: str, body: str) -> str | None:
    """Push the branch and open its pull request; its URL, or None when gh cannot."""
    if not ready():
        return None
    pushed = subprocess.run(
        ["git", "push", "--quiet", "-u", "origin", branch],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **push_credentials()},
    )
    if pushed.returncode != 0:
        return None
    created = subprocess.run(
        ["gh", "pr", "create", "--base", base, "--head", branch, "--title", title, "--body", body],
        cwd=root,
        capture_output=True,
        text=True,
    )
    return created.stdout.strip() if created.returncode == 0 else None


def codeowners(root: Path, path: str) -> list[str]:
    """The owners CODEOWNERS gives `path` (the last matching pattern wins, as on GitHub)."""
    for candidate in (root / ".github" / "CODEOWNERS", root / "CODEOWNERS", root / "docs" / "CODEOWNERS"):
        if not candidate.is_file():
            continue
        owners: list[str] = []
        for line in candidate.read_text(encoding="utf-8").splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 2 and owns(parts[0], path):
                owners = parts[1:]
        return owners
    return []


def owns(pattern: str, path: str) -> bool:
    """CODEOWNERS (gitignore-style) matching, enough for paths of files."""
    import fnmatch

    if pattern in ("*", "/*", "**"):
        return True
    anchored = pattern.startswith("/") or "/" in pattern.rstrip("/")
    stem = pattern.strip("/")
    parts = path.split("/")
    candidates = [path] if anchored else ["/".join(parts[i:]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatchcase(c, stem) or c.startswith(stem + "/") or fnmatch.fnmatchcase(c, stem + "/*")
        for c in candidates
    )
