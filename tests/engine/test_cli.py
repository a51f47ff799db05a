"""The `mlops` command's surface: help, version, exit codes."""

from __future__ import annotations

import json
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


def test_paths_say_where_the_state_lies_as_the_makefile_and_workflows_read_it(
    repo: Path, tmp_path: Path
) -> None:
    lines = run_mlops("paths", "--env", "staging", cwd=repo)
    assert lines.returncode == 0, lines.stderr
    found = dict(line.split("=", 1) for line in lines.stdout.splitlines())
    assert found["evidence"] == ".mlops/evidence/staging" and found["drift_reports"] == ".mlops/drift/staging"
    assert found["gate_comment"] == ".mlops/policy-gate.md"
    assert run_mlops("paths", "evidence", "--env", "staging", cwd=repo).stdout == ".mlops/evidence/staging\n"
    moved = tmp_path / "state dir"  # what outlives a checkout moves; the checkout's hand-offs stay
    elsewhere = run_mlops(
        "paths", "--env", "staging", "-o", "json", cwd=repo, env_extra={"MLOPS_STATE_DIR": str(moved)}
    )
    as_json = json.loads(elsewhere.stdout)
    assert (
        as_json["evidence"] == f"{moved}/evidence/staging"
        and as_json["gate_comment"] == ".mlops/policy-gate.md"
    )
    shell = run_mlops("paths", "--shell", cwd=repo, env_extra={"MLOPS_STATE_DIR": str(moved)})
    assert f"state='{moved}'" in shell.stdout.splitlines()
    unknown = run_mlops("paths", "evidence", cwd=repo)  # an environment's path without --env
    assert unknown.returncode == 2 and "(some need --env)" in unknown.stderr
    assert run_mlops("paths", "--env", "../x", cwd=repo).returncode == 2  # a name, checked first


def test_starting_the_command_imports_no_supply_chain_or_format_checker() -> None:
    """Every `mlops` process imports the engine: what only some verbs need (model-signing with
    sigstore, CycloneDX) is imported by them alone, and jsonschema runs without the format
    checkers whose import builds a grammar (rfc3987-syntax: 1.7 s of every process, once)."""
    import subprocess
    import sys

    code = (
        "import sys, mlops_gitops.cli, mlops_gitops.commands, jsonschema; "
        "print(sorted(m for m in ('model_signing', 'sigstore', 'cyclonedx', 'rfc3987_syntax', 'lark') "
        "if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]", found.stdout
