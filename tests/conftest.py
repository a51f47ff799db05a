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

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONFIG_PATHS = ("mlops.yaml", "templates")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Inside an act job (ACT is set) the tests that run act themselves would recurse forever:
    they are deselected there and run by the outer suite that started act."""
    if not os.environ.get("ACT"):
        return
    inner = [item for item in items if item.get_closest_marker("act")]
    if inner:
        config.hook.pytest_deselected(items=inner)
        items[:] = [item for item in items if not item.get_closest_marker("act")]


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
    for name in ("MLOPS_REPO", "MLOPS_STATE_DIR", "MLFLOW_TRACKING_URI", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)  # state of this process (or of make) must not leak into the commands
    return env


def chromium_path() -> str:
    """Debian's Chromium, for the browser tests; installed here (apt-get, as root) when missing.

    Playwright drives it with `executable_path`: its own browser download cannot run offline."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
        found = shutil.which("chromium")
        if found:
            return found
        pytest.fail(f"apt-get install chromium failed: {proc.stderr.strip()[-500:]}")
    pytest.fail("chromium is missing and cannot be installed here (expected `sudo apt-get install chromium`)")


def run_mlops(
    *args: str, cwd: Path, check: bool = False, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mlops_gitops.cli", *args],
        cwd=cwd,
        env={**base_env(), **(env_extra or {})},
        capture_output=True,
        text=True,
        timeout=120,
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


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """This repository's mlops.yaml and scaffold templates with one model, "churn", scaffolded.

    The model is made here rather than copied so the same tests run in every generated
    repository, whatever its first model is called.
    """
    from mlops_gitops.scaffold import add_model, load_for_add

    dest = tmp_path / "repo"
    copy_files([f for f in instance_files() if f.split("/", 1)[0] in CONFIG_PATHS], ROOT, dest)
    add_model(load_for_add(dest, "churn"), "churn")
    return dest


@pytest.fixture
def mlops() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_mlops


@pytest.fixture(scope="session")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated-repository copy whose registry (its default sqlite file) holds churn v1 and
    v2 (good), v3 (its predict raises) and v4 (answers once, then raises: it passes the server's
    load-time smoke test and fails after the switch). Tests copy it; the registry's artifact
    store is shared."""
    from mlops_gitops.demo import register_broken
    from mlops_gitops.scaffold import add_model, load_for_add

    from .registered import register_version, registry_of
    from .workflows import sandbox

    repo = sandbox(tmp_path_factory.mktemp("registered") / "repo")
    # The same tests run in every generated repository, whatever its first model and target.
    if not (repo / "models" / "churn").exists():
        add_model(load_for_add(repo, "churn"), "churn")
    for other in [p.name for p in (repo / "models").iterdir() if p.name != "churn"]:
        shutil.rmtree(repo / "models" / other)  # one model: the tests read one plan row
        for manifest in (repo / "environments").glob(f"*/{other}.yaml"):
            manifest.unlink()
    project = repo / "mlops.yaml"
    project.write_text(project.read_text().replace("  target: kserve", "  target: local"))
    for manifest in (repo / "environments").glob("*/churn.yaml"):
        manifest.write_text(manifest.read_text().replace("kind: kserve", "kind: local"))
    if subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout:
        git_commit_all(repo, "model churn on the local target")
    assert register_version(repo, "churn", seed=7) == 1
    assert register_version(repo, "churn", seed=3) == 2
    assert register_broken(registry_of(repo), "churn") == 3
    assert register_broken(registry_of(repo), "churn", good_calls=1) == 4
    return repo
