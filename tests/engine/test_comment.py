"""`mlops comment`: one comment per name, updated in place.

GitHub's API cannot be reached from here: a stand-in `gh` on PATH answers `gh api` like GitHub
(list, create, edit issue comments) from a JSON file, and records every call."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ..conftest import run_mlops

FAKE_GH = r"""#!/usr/bin/env python3
import json, sys
from pathlib import Path
state = Path(__file__).with_name("state.json")
data = json.loads(state.read_text()) if state.exists() else {"comments": [], "calls": []}
args = sys.argv[2:]
path = args[-1]
method = args[args.index("--method") + 1] if "--method" in args else "GET"
data["calls"].append([method, path])
if method == "GET":
    # GitHub pages listings by 100; `gh api --paginate` prints one array per page, and
    # `--slurp` wraps them in one array of pages
    pages = [data["comments"][i : i + 100] for i in range(0, len(data["comments"]), 100)] or [[]]
    if "--slurp" not in args:
        print("".join(json.dumps(page) for page in pages))
        state.write_text(json.dumps(data))
        sys.exit(0)
    out = pages
elif method == "POST":
    body = json.loads(sys.stdin.read())
    out = {"id": 1000 + len(data["comments"]), "body": body["body"]}
    data["comments"].append(out)
else:
    body = json.loads(sys.stdin.read())
    cid = int(path.rsplit("/", 1)[1])
    out = next(c for c in data["comments"] if c["id"] == cid)
    out["body"] = body["body"]
state.write_text(json.dumps(data))
print(json.dumps(out))
"""


def run(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GITHUB_REPOSITORY": "acme/models"}
    return run_mlops(
        "comment",
        "--name",
        "policy-gate",
        "--pr",
        "7",
        "--body-file",
        "-",
        cwd=tmp_path,
        env_extra=env,
        input=body,
    )


def test_the_comment_is_created_once_then_updated_in_place(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "state.json").write_text(
        json.dumps({"comments": [{"id": 5, "body": "someone else's comment"}], "calls": []})
    )
    first = run(tmp_path, "### Policy gate: ✅ **allowed**")
    assert first.returncode == 0, first.stderr
    assert "created comment 1001 on acme/models#7" in first.stderr
    second = run(tmp_path, "### Policy gate: ❌ **denied**")
    assert second.returncode == 0, second.stderr
    assert "updated comment 1001 on acme/models#7" in second.stderr
    state = json.loads((tmp_path / "bin" / "state.json").read_text())
    assert len(state["comments"]) == 2  # the other comment and ours, not a pile
    ours = state["comments"][1]
    assert ours["body"] == "<!-- mlops:policy-gate -->\n### Policy gate: ❌ **denied**"
    assert state["comments"][0]["body"] == "someone else's comment"
    assert ["PATCH", "repos/acme/models/issues/comments/1001"] in state["calls"]


def test_past_a_hundred_comments_the_one_to_update_is_still_found(tmp_path: Path) -> None:
    """A busy pull request: 150 comments, ours the 140th. Every page is read (one JSON document
    of pages, `--paginate --slurp`), so it is updated, not posted again."""
    (tmp_path / "bin").mkdir()
    comments = [{"id": i, "body": f"comment {i}"} for i in range(150)]
    comments[139]["body"] = "<!-- mlops:policy-gate -->\nold verdict"
    (tmp_path / "bin" / "state.json").write_text(json.dumps({"comments": comments, "calls": []}))
    proc = run(tmp_path, "new verdict")
    assert proc.returncode == 0, proc.stderr
    assert "updated comment 139 on acme/models#7" in proc.stderr
    state = json.loads((tmp_path / "bin" / "state.json").read_text())
    assert len(state["comments"]) == 150 and state["comments"][139]["body"].endswith("new verdict")


def test_without_a_pull_request_number_it_says_so(tmp_path: Path) -> None:
    proc = run_mlops(
        "comment",
        "--name",
        "x",
        "--body-file",
        "-",
        cwd=tmp_path,
        env_extra={"GITHUB_REPOSITORY": "acme/models"},
        input="hi",
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "error: comment: no pull request number (expected --pr N or a pull_request event)"
    )


class FakeGitHub:
    """GitHub's issues and dispatch API, in memory (GitHub cannot be reached from tests)."""

    def __init__(self) -> None:
        self.issues: list[dict[str, object]] = [
            {"number": 3, "body": "a person's issue"},
            {
                "number": 4,
                "body": "<!-- mlops:drift-staging -->\nold",
                "pull_request": {},
            },  # a PR, not an issue
        ]
        self.calls: list[tuple[str, str, dict[str, object]]] = []

    def get(self, path: str) -> object:
        assert path.startswith("repos/acme/models/issues?state=open")
        return [dict(i) for i in self.issues if i.get("state", "open") == "open"]

    def send(self, method: str, path: str, body: dict[str, object]) -> object:
        self.calls.append((method, path, body))
        if method == "POST" and path.endswith("/issues"):
            issue = {"number": 100 + len(self.issues), **body}
            self.issues.append(issue)
            return issue
        if method == "PATCH":
            number = int(path.rsplit("/", 1)[1])
            next(i for i in self.issues if i["number"] == number).update(body)
        return None


def test_one_open_issue_per_alert_updated_while_open_then_a_new_one() -> None:
    from mlops_gitops.core.github import dispatch, upsert_issue

    github = FakeGitHub()
    assert upsert_issue(github, "acme/models", "drift-staging", "Drift in staging", "v1") == ("opened", 102)
    assert upsert_issue(github, "acme/models", "drift-staging", "Drift in staging", "v2") == ("updated", 102)
    ours = [i for i in github.issues if i["number"] == 102]
    assert len(ours) == 1 and ours[0]["body"] == "<!-- mlops:drift-staging -->\nv2"
    ours[0]["state"] = "closed"  # resolved: the next drift is a new incident
    assert upsert_issue(github, "acme/models", "drift-staging", "Drift in staging", "v3")[0] == "opened"
    dispatch(github, "acme/models", "train.yml", "main", {"models": "churn"})
    assert github.calls[-1] == (
        "POST",
        "repos/acme/models/actions/workflows/train.yml/dispatches",
        {"ref": "main", "inputs": {"models": "churn"}},
    )
