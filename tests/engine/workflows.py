"""Run a workflow through the real `act` (host mode) and report which jobs ran and how.

act silently skips a job whose `runs-on` label is not mapped and still exits 0, so the
result lists every job of the workflow with what act reported for it (None: never ran).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from ..conftest import ROOT, base_env, copy_files, git_commit_all, instance_files

BIN = Path(sys.executable).parent


def workflow_jobs(path: Path) -> list[str]:
    return list(yaml.safe_load(path.read_text())["jobs"])


def sandbox(dest: Path, root: Path = ROOT) -> Path:
    """A git repository holding exactly what a generated repository holds."""
    copy_files(instance_files(root), root, dest)
    git_commit_all(dest)
    return dest


def with_key(repo: Path) -> Path:
    """The team's signing key, made as `mlops keys init` makes it: its public half in the
    repository (what mlops.yaml's signing.keys.team names), its private half in the state
    directory; `register_version` and the demo's helpers then sign what they register."""
    from mlops_gitops.core.config import load_repo
    from mlops_gitops.registry import signing

    signing.init_key(load_repo(repo), "team")
    return repo


def shared_tools(repo: Path) -> Path:
    """A tool cache where the workflows' setup action (.github/actions/setup) finds this test run's
    environment under the key it computes (`make tools-path`): what an earlier job on the same
    runner would have installed, without exporting VENV. Returns the cache directory."""
    cache = repo.parent / f"{repo.name}-tools"
    out = subprocess.run(
        ["make", "-s", "tools-path"],
        cwd=repo,
        env={**base_env(), "TOOLS_CACHE": str(cache)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(next(line for line in out.splitlines() if line.startswith("path=")).split("=", 1)[1])
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        environment(path)
    return cache


def environment(path: Path) -> Path:
    """This test run's environment at `path`, for make and act: a view whose `mlops` is forked
    from the tests' fork server (forkserver.venv), or, with the fork server off, a link to it."""
    from .. import forkserver

    if forkserver.enabled():
        return forkserver.venv(path, base_env())
    path.symlink_to(Path(sys.prefix))
    return path


def run_act(
    repo: Path,
    event: str,
    workflow: str,
    event_file: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    timeout: int = 900,
) -> tuple[dict[str, Any], str]:
    """Run act; returns ({job id: 'success' | 'failure' | None}, the plain log)."""
    full_env = {**base_env(), "TOOLS_CACHE": str(shared_tools(repo)), **(env or {})}
    full_env["PATH"] = f"{BIN}{os.pathsep}{full_env['PATH']}"
    for name in ("ACT", "VENV", "PYTHONPATH"):  # the jobs find the tool set on their own
        full_env.pop(name, None)
    proc = subprocess.run(
        [str(BIN / "act"), event, "-W", workflow, "-e", str(event_file), "--json", *extra],
        cwd=repo,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    results: dict[str, Any] = {job: None for job in workflow_jobs(repo / workflow)}
    lines = []
    for line in (proc.stdout + proc.stderr).splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            lines.append(line)
            continue
        lines.append(f"[{entry.get('jobID', '')}] {entry.get('msg', '')}")
        if "jobResult" in entry:
            results[entry["jobID"]] = entry["jobResult"]
    return results, "\n".join(lines)
