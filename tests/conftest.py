"""Shared helpers: run the real `mlops` command in a subprocess, copy the repo, hash trees."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# One thread per process for the numeric libraries (OpenMP in scikit-learn, LightGBM, XGBoost;
# BLAS in numpy): pytest-xdist already runs a worker per core, and each test's pipeline stages,
# registrations and model servers run beside it. With a thread per core in every process,
# OpenMP's busy wait spins against the other processes: the example's training stage took 4x the
# CPU time (17 s against 4 s) on CI's 2 cores. Set before any of those libraries is imported, and
# inherited by every process the tests start; an OMP_NUM_THREADS already set is kept.
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
for _name, _value in THREADS.items():
    os.environ.setdefault(_name, _value)


def base_env() -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "scripts"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "DVC_NO_ANALYTICS": "true",
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    # commits made by the commands under test need an identity, whatever the machine has configured
    env.update(
        GIT_AUTHOR_NAME="mlops tests",
        GIT_AUTHOR_EMAIL="tests@localhost",
        GIT_COMMITTER_NAME="mlops tests",
        GIT_COMMITTER_EMAIL="tests@localhost",
    )
    leaks = ("MLOPS_REPO", "MLOPS_STATE_DIR", "MLFLOW_TRACKING_URI", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    # inside a workflow job (act, GitHub): its event and summary are not the commands' under test
    leaks += ("GITHUB_EVENT_PATH", "GITHUB_BASE_REF", "GITHUB_STEP_SUMMARY", "MLOPS_NOW")
    # a pytest-xdist worker's identity is this run's, not that of a pytest the test starts
    leaks += (
        "PYTEST_XDIST_WORKER",
        "PYTEST_XDIST_WORKER_COUNT",
        "PYTEST_XDIST_TESTRUNUID",
        "PYTEST_CURRENT_TEST",
    )
    for name in leaks:
        env.pop(name, None)  # state of this process (or of make) must not leak into the commands
    return env


def run_mlops(
    *args: str,
    cwd: Path,
    check: bool = False,
    env_extra: dict[str, str] | None = None,
    timeout: int = 300,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real `mlops` command in a subprocess, in `cwd`, on this checkout's engine, with this
    environment's tools (dvc, act) on PATH: the one way tests run it. The process is forked from
    a server that imported the heavy libraries once (tests/forkserver.py)."""
    from . import forkserver

    env = {**base_env(), **(env_extra or {})}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if forkserver.enabled():
        proc = forkserver.run(list(args), cwd, env, base_env(), input=input, timeout=timeout)
    else:
        proc = subprocess.run(
            [sys.executable, "-m", "mlops_gitops.cli", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"mlops {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def git_files(root: Path = ROOT) -> list[str]:
    """The files git tracks or would track (untracked but not ignored) under root."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(p for p in out.split("\0") if p and (root / p).is_file())


def instance_files(root: Path = ROOT) -> list[str]:
    """The files a generated repository holds: git's files minus the template-only ones."""
    files = git_files(root)
    template_json = root / "cookiecutter.json"
    if not template_json.is_file():
        return files
    template_only = json.loads(template_json.read_text())["_template_only"]
    return [
        f for f in files if not any(f == t or (t.endswith("/") and f.startswith(t)) for t in template_only)
    ]


def dvc_tracked_tables(root: Path = ROOT) -> list[str]:
    """The teams' own tables (pipelines/sources/, tracked by DVC: git holds their .dvc files, not
    them), as paths under root. Missing ones are named in one line: `dvc pull` fetches them."""
    found = []
    for tracked in sorted((root / "pipelines" / "sources").glob("*.dvc")):
        outs = (yaml.safe_load(tracked.read_text()) or {}).get("outs") or []
        for out in outs:
            rel = (tracked.parent / str(out["path"])).relative_to(root).as_posix()
            if not (root / rel).is_file():
                pytest.fail(f"{rel}: missing (expected the table {tracked.name} tracks: `dvc pull {rel}`)")
            found.append(rel)
    return found


def copy_files(files: list[str], src: Path, dest: Path) -> Path:
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
    return dest


def git_commit_all(path: Path, message: str = "snapshot") -> None:
    if not (path / ".git").exists():
        subprocess.run(["git", "init", "--quiet", "--initial-branch=main"], cwd=path, check=True)
    subprocess.run(["git", "add", "--all"], cwd=path, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@localhost",
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            message,
        ],
        cwd=path,
        check=True,
    )


def tree_digest(path: Path) -> dict[str, str]:
    """sha256 of every file under path (outside .git): a before/after picture of 'nothing changed'."""
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(path).parts
    }


# What the generated repository's life (tests/template/test_life.py) runs too: files or node ids.
LIFE_RUNS = (
    "tests/test_life.py",
    "tests/engine/test_workflows.py::test_pr_workflow_runs_every_job_under_act",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest tests first (a generated repository's life, then the template's other tests,
    then those that run act or are slow), so that under pytest-xdist, handed out one at a time,
    none of them starts last; the order is otherwise kept.

    In the template's own repository, a session that runs the generated repository's life
    (tests/template/test_life.py) leaves out what that life runs itself, asserting at least as
    much (`LIFE_RUNS`): this repository's tests/test_life.py, which it runs inside the generated
    repository (its pr.yml's test job, under act), over that repository's two models; and pr.yml
    under act with every job, which it runs in the generated repository's last state. Run
    without that life, they run here."""
    life = ROOT / "tests" / "template" / "test_life.py"
    if any(item.path == life for item in items):
        ours = [item for item in items if item.nodeid.split("::")[0] in LIFE_RUNS or item.nodeid in LIFE_RUNS]
        if ours:
            config.hook.pytest_deselected(items=ours)
            items[:] = [item for item in items if item not in ours]

    def weight(item: pytest.Item) -> int:
        if item.path.name == "test_life.py" and "template" in item.path.parts:
            return 0
        if "template" in item.path.parts:
            return 1
        if item.get_closest_marker("act"):
            return 2
        return 3 if item.get_closest_marker("slow") else 4

    items.sort(key=weight)


@pytest.fixture
def mlops() -> Callable[..., subprocess.CompletedProcess[str]]:
    """The real `mlops` command in a subprocess: mlops(*args, cwd=..., check=..., env_extra=...)."""
    return run_mlops


def pristine(repo: Path) -> None:
    """Every manifest asks for no version (no traffic split, shadow or exception): the state of a
    repository before its first promotion, whatever the live one has been through."""
    for path in sorted((repo / "environments").glob("*/*.y*ml")):
        manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            continue
        for key in ("traffic", "shadow", "exceptions"):
            manifest.pop(key, None)
        manifest.update(version=None, suspend=False)
        path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """This repository's files (as git has them, uncommitted ones included, and the tables DVC
    tracks for its models) in a temporary git repository, pristine: no version promoted
    anywhere, no registry, no pipeline output, no deployment. Tests build the state they need
    there, never in the live repository."""
    repo = copy_files([*git_files(), *dvc_tracked_tables()], ROOT, tmp_path / "repo")
    pristine(repo)
    git_commit_all(repo, "scratch copy")
    return repo
