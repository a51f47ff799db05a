"""What the engine's tests share, in one place: a manifest edited and committed, a promotion
merged as GitHub merges it, HTTP to a deployment, its records, aliases and input example, and a
client polling through a change."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import base_env, git_commit_all


@pytest.fixture(name="repo")
def served_repo(served: Path) -> Path:
    """`repo` in the deployment tests (imported by their modules): conftest's `served`, a copy of
    the registered repository whose model servers are stopped at the end."""
    return served


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, env=base_env()
    ).stdout.strip()


def merge(repo: Path, branch: str, *trailers: str, message: str | None = None) -> None:
    """`branch` merged into main with a merge commit (GitHub's "Create a merge commit")."""
    git(repo, "switch", "--quiet", "main")
    extra = [part for trailer in trailers for part in ("-m", trailer)]
    git(repo, "merge", "--quiet", "--no-ff", "-m", message or f"Merge {branch}", *extra, branch)


def merge_pull_request(repo: Path, number: int, env: str, *trailers: str, **fields: Any) -> None:
    """A promotion as GitHub merges it: a branch, its commit setting `fields` in env's manifest,
    and a merge commit naming pull request `number` (and any trailers)."""
    branch = f"promote/churn-{env}-{number}"
    start = git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    git(repo, "switch", "--quiet", "-c", branch)
    set_manifest(repo, env, f"Promote churn v{fields.get('version')} to {env}", **fields)
    git(repo, "switch", "--quiet", start)
    message = f"Merge pull request #{number} from acme/{branch}"
    extra = [part for trailer in trailers for part in ("-m", trailer)]
    git(repo, "merge", "--no-ff", "--quiet", "-m", message, *extra, branch)


def set_manifest(repo: Path, env: str, message: str, **fields: Any) -> None:
    path = repo / "environments" / env / "churn.yaml"
    text = path.read_text()
    for key, value in fields.items():
        rendered = yaml.safe_dump({key: value}, default_flow_style=True, width=1 << 20).strip()[1:-1]
        pattern = re.compile(rf"^#? ?{key}:.*$", re.MULTILINE)
        text = pattern.sub(rendered, text, count=1) if pattern.search(text) else text + rendered + "\n"
    path.write_text(text)
    git_commit_all(repo, message)


def http(
    method: str, url: str, body: Any = None, raw: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def example(repo: Path, version: int = 1) -> list[dict[str, Any]]:
    """The input example of a deployed version (MLflow's input_example.json, as records)."""
    from mlops_gitops.core.protocols import input_example

    return input_example(repo / f".mlops/artifacts/churn/v{version}/model")


def url_of(repo: Path, env: str = "staging") -> str:
    state = json.loads((repo / f".mlops/servers/{env}/churn.json").read_text())
    return f"http://{state['host']}:{state['port']}"


def records(repo: Path, env: str = "staging") -> list[dict[str, Any]]:
    path = repo / f".mlops/records/{env}/churn.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def aliases(repo: Path) -> dict[str, int]:
    from mlflow import MlflowClient

    return {
        k: int(v)
        for k, v in MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
        .get_registered_model("churn")
        .aliases.items()
    }


class Poller:
    """A client predicting in a loop: every answer's status and version, to prove no gap."""

    def __init__(self, url: str, records: list[dict[str, Any]]):
        self.url, self.records = url, records
        self.answers: list[tuple[int, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status, body = http("POST", f"{self.url}/predict", {"dataframe_records": self.records[:1]})
                self.answers.append((status, body.get("version") if isinstance(body, dict) else None))
            except OSError as exc:
                self.answers.append((0, str(exc)))
            time.sleep(0.01)

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


V2_TYPE = {str: "BYTES", int: "INT64", float: "FP64"}


def v2_infer(row: dict[str, Any], request_id: str) -> dict[str, Any]:
    """An Open Inference Protocol request for one row, with the client's `id`."""
    tensors = [{"name": k, "shape": [1], "datatype": V2_TYPE[type(v)], "data": [v]} for k, v in row.items()]
    return {"id": request_id, "inputs": tensors}
