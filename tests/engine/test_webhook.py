"""A registry event opens the promotion: MLflow's own webhook delivery, from the team's registry
(PostgreSQL, authentication, S3: test_team_registry's), to `mlops webhook` running as a process,
which opens the pull request mlops.yaml's registry.promotions asks for; `mlops watch --registry`
finds what a missed delivery would have done, once.

MLflow refuses to deliver to loopback and to http:// unless told otherwise: the registry's
process here (only) gets its documented opt-outs, MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true and
MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https. GitHub cannot be reached: a `gh` script on PATH
stands in for it (authenticated; `gh pr create` is written down and answered with a URL), and a
bare repository is the checkout's origin.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import base_env, git_commit_all, run_mlops
from . import peers
from .helpers import git, http
from .mlflow_server import free_port
from .registered import register_version
from .test_team_registry import Team, as_role, start_team
from .workflows import sandbox

pytestmark = pytest.mark.slow
SECRET = "a-webhook-secret-of-the-team-0123456789"
RULES = """  promotions:
    - event: model_version.created  # a version whose report passed goes to staging
      tags: {mlops.report.passed: "true"}
      to: staging
"""
FAKE_GH = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/gh.log"
[ "$1 $2" = "auth status" ] && exit 0
[ "$1 $2" = "pr create" ] && echo "https://github.com/acme/models/pull/1" && exit 0
exit 1
"""


@pytest.fixture
def receiving(tmp_path: Path) -> Iterator[tuple[Team, Path, Path]]:
    """The team's registry, a checkout with promotion rules and an origin, and a `gh` stand-in."""
    repo = sandbox(tmp_path / "repo")
    text = (repo / "mlops.yaml").read_text()
    (repo / "mlops.yaml").write_text(
        text.replace("\n  # promotions:\n", "\n" + RULES + "  # promotions:\n", 1)
    )
    git_commit_all(repo, "Promote by registry events")
    subprocess.run(["git", "init", "--quiet", "--bare", str(tmp_path / "origin.git")], check=True)
    git(repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(repo, "push", "--quiet", "-u", "origin", "main")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gh").write_text(FAKE_GH)
    (fake / "gh").chmod(0o755)
    opt_out = {"MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true", "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https"}
    found = start_team(tmp_path, repo, server_extra=opt_out)
    team = next(found)
    try:
        yield team, repo, fake
    finally:
        found.close()


def post(url: str, body: bytes, delivery: str, stamp: int, secret: str = SECRET) -> tuple[int, Any]:
    from mlops_gitops.deploy.events import signature

    headers = {
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": str(stamp),
        "X-MLflow-Signature": signature(secret, delivery, str(stamp), body),
    }
    return http("POST", url, raw=body, headers=headers)


def wait_for(what: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_a_registry_event_opens_the_promotion(
    receiving: tuple[Team, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    team, repo, fake = receiving
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**team.role("gate"), "MLOPS_WEBHOOK_SECRET": SECRET, "PATH": f"{fake}:{base_env()['PATH']}"}
    command = [sys.executable, "-m", "mlops_gitops.cli", "--repo", str(repo), "webhook", "--port", str(port)]
    with peers.serving(command, f"{url}healthz", tmp_path / "webhook" / "log", env=env):
        # MLflow's admin subscribes the receiver; the trainer registers a version
        for key, value in {**team.role("trainer"), "MLFLOW_TRACKING_USERNAME": "admin"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", team.secrets["admin_password"])
        MlflowClient(team.url).create_webhook(
            name="promotions", url=url, events=["model_version.created"], secret=SECRET
        )
        as_role(monkeypatch, team, "trainer")
        assert register_version(repo, "churn") == 1
        pulled = wait_for(lambda: "pr create" in _text(fake / "gh.log") and _text(fake / "gh.log"))
        assert "--base main --head promote/churn-staging-v1" in pulled
        shown = git(repo, "--git-dir", str(tmp_path / "origin.git"), "show",
                    "promote/churn-staging-v1:environments/staging/churn.yaml")  # fmt: skip
        assert "version: 1" in shown
        assert git(repo, "branch", "--show-current") == "main" and git(repo, "status", "--porcelain") == ""
        health = http("GET", f"{url}healthz")[1]
        assert (health["received"], health["proposed"], health["refused"]) == (1, 1, 0)

        # Only a signed, fresh, first delivery counts.
        data = {"name": "churn", "version": "1", "tags": {"mlops.report.passed": "true"}}
        body = json.dumps({"entity": "model_version", "action": "created", "data": data})
        now = int(time.time())
        assert post(url, body.encode(), "d-1", now)[0] == 200  # v1: handled already, nothing new
        assert post(url, body.encode(), "d-1", now) == (
            409,
            {"error": "X-MLflow-Delivery-Id d-1: delivered before (a replay)"},
        )
        assert post(url, body.encode(), "d-2", now - 600)[0] == 400  # stale
        assert post(url, body.encode(), "d-3", now, secret="not-the-secret-at-all")[0] == 401
        assert http("POST", url, raw=body.encode())[0] == 401  # unsigned
        assert _text(fake / "gh.log").count("pr create") == 1

    # The receiver is down when v2 is registered: the poll finds it, once.
    assert register_version(repo, "churn", seed=8) == 2
    watch = ["watch", "--registry", "--once", "-o", "json"]
    extra = {**team.role("gate"), "PATH": f"{fake}:{base_env()['PATH']}"}
    first = json.loads(run_mlops(*watch, cwd=repo, env_extra=extra).stdout)["outcomes"]
    assert [(o["version"], o["environment"], o["result"], o["via"]) for o in first] == [
        (2, "staging", "proposed", "poll")
    ]
    again = json.loads(run_mlops(*watch, cwd=repo, env_extra=extra).stdout)["outcomes"]
    assert [o["result"] for o in again] == ["handled-already"]
    assert _text(fake / "gh.log").count("pr create") == 2


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        ("    - {event: model_version.created, to: prod}\n",
         "registry.promotions[0].to: 'prod' is not an environment (expected one of staging, production)"),
        ("    - {event: model_version.created, to: staging, models: [fraud]}\n",
         "registry.promotions[0].models: fraud not defined"),
        ("    - {event: model_version.deleted, to: staging}\n", "registry.promotions"),
        ("    - {event: model_version_alias.created, to: staging}\n", "registry.promotions"),
    ],
)  # fmt: skip
def test_a_bad_promotion_rule_is_one_line(tmp_path: Path, rule: str, said: str) -> None:
    repo = sandbox(tmp_path / "repo")
    text = (repo / "mlops.yaml").read_text()
    (repo / "mlops.yaml").write_text(text.replace("\n  # promotions:\n", "\n  promotions:\n" + rule, 1))
    found = run_mlops("watch", "--registry", "--once", cwd=repo)
    lines = [line for line in found.stderr.splitlines() if line.strip()]
    assert found.returncode == 1 and len(lines) == 1 and said in lines[0], found.stderr
    assert "mlops.yaml" in lines[0]


def test_events_match_their_rules() -> None:
    from mlops_gitops.deploy.events import Event, Refused, Rule, parse

    data = b'"data": {"name": "churn", "version": "3", "source": "models:/m", "tags": {"k": "v"}}'
    created = parse(b'{"entity": "model_version", "action": "created", "timestamp": "t", ' + data + b"}")
    assert created == Event("model_version.created", "churn", 3, {"k": "v"})
    aliased = parse(b'{"entity": "model_version_alias", "action": "created",'
                    b' "data": {"name": "churn", "alias": "challenger", "version": "4"}}')  # fmt: skip
    assert aliased == Event("model_version_alias.created", "churn", 4, {}, "challenger")
    assert parse(b'{"entity": "model_version_tag", "action": "set", "data": {}}') is None
    with pytest.raises(Refused, match="data"):
        parse(b'{"entity": "model_version", "action": "created", "data": {"name": "../x", "version": "1"}}')
    rule = Rule("model_version.created", "staging", ("churn",), (("k", "v"),))
    assert rule.matches(created)
    assert not rule.matches(Event("model_version.created", "churn", 3, {"k": "w"}))
    assert not rule.matches(Event("model_version.created", "fraud", 3, {"k": "v"}))
    assert Rule("model_version_alias.created", "staging", alias="challenger").matches(aliased)
    assert not Rule("model_version_alias.created", "staging", alias="champion").matches(aliased)
