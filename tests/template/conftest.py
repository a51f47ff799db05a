"""Generate projects from this template with the real cookiecutter and cruft CLIs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT, base_env, copy_files, git_commit_all, git_files

BIN = Path(sys.executable).parent
TEMPLATE_ONLY: list[str] = json.loads((ROOT / "cookiecutter.json").read_text())["_template_only"]


def bake(
    template: str | Path, output: Path, answers: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`cookiecutter --no-input TEMPLATE key=value ...` in a subprocess, as a user runs it."""
    output.mkdir(parents=True, exist_ok=True)
    pairs = [f"{k}={v}" for k, v in (answers or {}).items()]
    return subprocess.run(
        [str(BIN / "cookiecutter"), "--no-input", str(template), "-o", str(output), *pairs],
        cwd=cwd or output,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def baked(template: str | Path, output: Path, answers: dict[str, str] | None = None) -> Path:
    proc = bake(template, output, answers)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (project,) = [p for p in output.iterdir() if p.is_dir()]
    return project


def generated_files(project: Path) -> list[str]:
    return sorted(
        p.relative_to(project).as_posix()
        for p in project.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(project).parts
    )


def template_snapshot(dest: Path) -> Path:
    """This template as a git repository of its own (the working tree, committed)."""
    copy_files(git_files(), ROOT, dest)
    git_commit_all(dest, "template snapshot")
    return dest


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return template_snapshot(tmp_path_factory.mktemp("template") / "mlops-gitops-template")
