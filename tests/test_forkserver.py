"""The fork server the tests' `mlops` commands run from (tests/forkserver.py) behaves like a fresh
`python -m mlops_gitops.cli`: the command's own working directory, environment, stdin and exit
code; a timeout kills it; a failure inside it does not reach the server or the next command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import forkserver
from .conftest import base_env

pytestmark = pytest.mark.skipif(not forkserver.enabled(), reason="MLOPS_TESTS_FORK=0: fresh processes")


def test_a_forked_command_has_its_own_directory_environment_and_exit_code(tmp_path: Path) -> None:
    fresh_env = {**base_env(), "MLOPS_REPO": str(tmp_path / "nowhere")}
    fresh = subprocess.run(
        [sys.executable, "-m", "mlops_gitops.cli", "status"],
        cwd=tmp_path,
        env=fresh_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    forked = forkserver.run(["status"], tmp_path, fresh_env, base_env())
    assert fresh.returncode != 0 and (forked.returncode, forked.stderr) == (fresh.returncode, fresh.stderr)
    assert "nowhere" in forked.stderr  # the command read the environment it was given
    helped = [
        subprocess.run(
            [sys.executable, "-m", "mlops_gitops.cli", "--help"],
            cwd=tmp_path,
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=120,
        ),
        forkserver.run(["--help"], tmp_path, base_env(), base_env()),
    ]  # a command that reads no repository state: the same answer, byte for byte
    fresh_help, forked_help = helped
    assert (forked_help.returncode, forked_help.stdout) == (fresh_help.returncode, fresh_help.stdout)
    assert forked_help.returncode == 0 and "Usage:" in forked_help.stdout


def test_stdin_reaches_the_command_and_its_exceptions_stay_in_it(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts" / "mlops_gitops"
    scripts.mkdir(parents=True)
    (scripts / "__init__.py").write_text("")
    (scripts / "cli.py").write_text(
        "import os, sys, numpy\n"
        "data = sys.stdin.read()\n"
        "print(os.getcwd(), os.environ['PROBE'], data, numpy.random.randint(1 << 30), sep='|')\n"
        "if data == 'raise': raise RuntimeError('inside the command')\n"
        "if data == 'hang': import time; time.sleep(60)\n"
        "sys.exit(int(data))\n"
    )
    env = {**base_env(), "PYTHONPATH": str(tmp_path / "scripts"), "PROBE": "seen"}
    first = forkserver.run([], tmp_path, env, base_env(), input="3")
    second = forkserver.run([], tmp_path, env, base_env(), input="4")
    cwd, probe, data, draw = first.stdout.strip().split("|")
    assert (first.returncode, cwd, probe, data) == (3, str(tmp_path), "seen", "3")
    assert second.returncode == 4 and second.stdout.split("|")[3] != draw  # numpy reseeded per command
    raised = forkserver.run([], tmp_path, env, base_env(), input="raise")
    assert raised.returncode == 1 and "RuntimeError: inside the command" in raised.stderr
    with pytest.raises(subprocess.TimeoutExpired):
        forkserver.run([], tmp_path, env, base_env(), input="hang", timeout=3)
    assert forkserver.run([], tmp_path, env, base_env(), input="0").returncode == 0  # the server lives on
    assert os.environ.get("PROBE") is None  # nothing leaked into this process


def test_the_shim_runs_a_shell_s_mlops_with_its_directory_streams_and_exit_codes(tmp_path: Path) -> None:
    """A shell script's `mlops` (the runbooks'), forked through the shim, against the real
    console script: the same files written, the same stderr, the same exit code."""
    folder = forkserver.shim(tmp_path / "bin", base_env())
    script = 'cd "$1" && mlops --help > help.txt && mlops no-such-verb 2> err.txt; echo "exit $?"'
    seen = {}
    for name, first in (("shim", folder), ("real", Path(sys.executable).parent)):
        where = tmp_path / name
        where.mkdir()
        env = {**base_env(), "PATH": f"{first}{os.pathsep}{os.environ['PATH']}"}
        proc = subprocess.run(
            ["bash", "-c", script, "-", str(where)], env=env, capture_output=True, text=True
        )
        seen[name] = (proc.stdout, (where / "help.txt").read_bytes(), (where / "err.txt").read_text())
    assert seen["shim"] == seen["real"] and seen["shim"][0] == "exit 2\n"
    assert b"Usage: mlops" in seen["shim"][1] and "No such command 'no-such-verb'" in seen["shim"][2]


def test_the_environment_view_is_this_one_with_the_shim_as_its_mlops(tmp_path: Path) -> None:
    """What make and act get in the tests (VENV, the workflows' tool set): an interpreter of its
    own prefix with this environment's packages, this environment's install stamp (so `make
    install` does nothing), and an `mlops` that answers as the real console script does: the
    fork server's shim."""
    view = forkserver.venv(tmp_path / "venv", base_env())
    probe = "import sys, mlflow, mlops_gitops; print(sys.prefix)"
    seen = subprocess.run(
        [str(view / "bin/python"), "-c", probe], capture_output=True, text=True, env=base_env()
    )
    assert seen.stdout.strip() == str(view), seen.stderr
    assert (view / ".installed").read_text() == (Path(sys.prefix) / ".installed").read_text()
    answers = {}
    for name, tool in (("view", view / "bin/mlops"), ("real", Path(sys.prefix) / "bin/mlops")):
        script = f'"{tool}" --help > /dev/null; "{tool}" no-such-verb; echo "exit $?"'
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=base_env())
        answers[name] = (proc.stdout.split(), proc.stderr)
    assert answers["view"] == answers["real"] and answers["view"][0] == ["exit", "2"]
    assert "tests.forkserver" in (view / "bin/mlops").read_text()
