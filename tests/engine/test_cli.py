"""The `mlops` command's surface: help, version, exit codes."""

from __future__ import annotations

from pathlib import Path

from mlops_gitops import __version__

from ..conftest import run_mlops


def test_help_lists_the_verbs(tmp_path: Path) -> None:
    proc = run_mlops("--help", cwd=tmp_path)
    assert proc.returncode == 0
    commands = proc.stdout.split("Commands:")[1]
    for verb in ("validate", "model"):
        assert f"\n  {verb} " in commands
    assert "Exit codes" in proc.stdout


def test_version(tmp_path: Path) -> None:
    proc = run_mlops("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"mlops {__version__} (python 3.")


def test_unknown_verb_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_mlops("frobnicate", cwd=tmp_path)
    assert proc.returncode == 2
    assert "No such command 'frobnicate'" in proc.stderr


def test_repo_option_points_at_another_directory(repo: Path, tmp_path: Path) -> None:
    proc = run_mlops("--repo", str(repo), "model", "list", "--output", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"model": "churn"' in proc.stdout
