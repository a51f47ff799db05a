"""Everyday operations in the sequences a team runs them, judged against Argo CD's and Flux's
promises: a split names its roles for every reader. The whole script of a team's second and
third day (rollback, break-glass and its hold, one bad file, stale branches, a dirty lineage) runs
in a generated repository in tests/template/test_operations.py.

Everything is real: git history with merges, the MLflow registry (sqlite), model servers on
loopback ports answering real HTTP requests, the `mlops` command as a process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import git_commit_all, run_mlops
from .helpers import git, http, merge, set_manifest, url_of

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(served: Path) -> Path:
    return served


def ok(*args: str, repo: Path, env_extra: dict[str, str] | None = None) -> Any:
    """Run an `mlops` verb that must succeed; its JSON answer when it printed one."""
    proc = run_mlops(*args, cwd=repo, env_extra=env_extra)
    assert proc.returncode == 0, f"mlops {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout) if "-o" in args else proc.stdout


def serving(repo: Path, env: str = "staging", model: str = "churn") -> list[int]:
    return http("GET", f"{url_of(repo, env) if model == 'churn' else url_for(repo, env, model)}/health")[1][
        "versions"
    ]


def url_for(repo: Path, env: str, model: str) -> str:
    state = json.loads((repo / f".mlops/servers/{env}/{model}.json").read_text())
    return f"http://{state['host']}:{state['port']}"


def entries(repo: Path, env: str = "staging", model: str = "churn") -> list[dict[str, Any]]:
    path = repo / f".mlops/records/{env}/{model}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def manifest_on(repo: Path, rev: str, env: str = "staging", model: str = "churn") -> dict[str, Any]:
    return yaml.safe_load(git(repo, "show", f"{rev}:environments/{env}/{model}.yaml"))


def roles_seen(repo: Path, tmp_path: Path) -> dict[str, tuple[int, int]]:
    """(baseline, challenger) as each reader names them after traffic through the split: status,
    history, compare and the evidence pack's history."""
    import zipfile

    ok(
        "predict",
        "churn",
        "--env",
        "staging",
        "--input",
        str(tmp_path / "rows.csv"),
        "--batch-size",
        "1",
        repo=repo,
    )
    (row,) = ok("status", "churn", "--env", "staging", "-o", "json", repo=repo)["deployments"]
    split = ok("history", "churn", "--env", "staging", "-o", "json", repo=repo)["stretches"][-1]
    compared = run_mlops("compare", "churn", "--env", "staging", "-o", "json", cwd=repo)
    assert compared.returncode in (0, 1, 3), compared.stderr
    told = json.loads(compared.stdout)
    pack = tmp_path / "pack.zip"
    ok(
        "evidence",
        "churn",
        "--env",
        "staging",
        "--version",
        str(row["challenger"]),
        "--out",
        str(pack),
        repo=repo,
    )
    with zipfile.ZipFile(pack) as archive:
        packed = json.loads(archive.read("history.json"))["stretches"][-1]
    return {
        "status": (row["stable"], row["challenger"]),
        "history": (split["version"], split["canary"]),
        "compare": (told["baseline"], told["challenger"]),
        "evidence": (packed["version"], packed["canary"]),
    }


def test_a_split_names_its_stable_version_and_challenger_for_every_reader(repo: Path, tmp_path: Path) -> None:
    """`version` is the stable version; the challenger is named beside it. A split written by the
    verb and one written by hand in either spelling: every reader names the same two."""
    from .registered import features

    X, y = features(rows=120, seed=5)
    X.assign(churned=y).to_csv(tmp_path / "rows.csv", index=False)
    set_manifest(repo, "staging", "Promote churn v1 to staging", version=1)
    ok("reconcile", "--env", "staging", repo=repo)

    made = ok(
        "promote",
        "churn",
        "--to",
        "staging",
        "--version",
        "2",
        "--canary",
        "30",
        "--no-pr",
        "-o",
        "json",
        repo=repo,
    )
    assert made["branch"] == "promote/churn-staging-v2-canary-30"
    manifest = manifest_on(repo, made["branch"])
    assert (manifest["version"], manifest["canary"]) == (1, {"version": 2, "percent": 30})
    merge(repo, made["branch"])
    ok("reconcile", "--env", "staging", repo=repo)
    assert set(roles_seen(repo, tmp_path).values()) == {(1, 2)}

    # by hand, the older spelling: v2 is the stable one because `version` says so
    set_manifest(repo, "staging", "v2 stable, v1 beside it", version=2, canary=None,
                 traffic=[{"version": 2, "percent": 60}, {"version": 1, "percent": 40}])  # fmt: skip
    text = (repo / "environments/staging/churn.yaml").read_text()
    (repo / "environments/staging/churn.yaml").write_text(text.replace("canary: null\n", ""))
    git_commit_all(repo, "drop the empty canary")
    ok("reconcile", "--env", "staging", repo=repo)
    assert set(roles_seen(repo, tmp_path).values()) == {(2, 1)}

    # the plain promotion ends the split: the challenger is the stable one, alone
    git(repo, "switch", "--quiet", "main")
    done = ok("promote", "churn", "--to", "staging", "--version", "1", "--no-pr", "-o", "json", repo=repo)
    final = manifest_on(repo, done["branch"])
    assert (final["version"], final.get("canary"), final.get("traffic")) == (1, None, None)
    refused = run_mlops(
        "promote", "churn", "--to", "staging", "--version", "2", "--canary", "10", "--no-pr", cwd=repo
    )
    assert refused.returncode == 2 and "--canary needs a stable version beside v2" in refused.stderr
