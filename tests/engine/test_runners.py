"""The self-hosted GPU runner kit under scripts/runners/.

GitHub's runner registration (actions/runner's config.sh talking to GitHub's API) and the
NVIDIA driver cannot run here: both are replaced by small scripts that record how they were
called. The script under test, its label handling and its refusals are real.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from ..conftest import ROOT

RUNNERS = ROOT / "scripts" / "runners"


def stub(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def register(tmp_path: Path, gpu: bool, **extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    runner_dir = tmp_path / "actions-runner"
    calls = tmp_path / "config-calls.txt"
    stub(runner_dir / "config.sh", f'echo "$@" >> {calls}\n')
    bin_dir = tmp_path / "bin"
    if gpu:
        stub(bin_dir / "nvidia-smi", 'echo "NVIDIA L4, 550.54.15, 23034 MiB"\n')
    bin_dir.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_URL": "https://github.com/acme/models",
        "RUNNER_TOKEN": "AAAA-registration",
        **extra,
    }
    if not gpu:  # hide any real driver
        env["PATH"] = os.pathsep.join(
            p for p in env["PATH"].split(os.pathsep) if not (Path(p) / "nvidia-smi").exists()
        )
    proc = subprocess.run(
        [str(RUNNERS / "register-runner.sh"), str(runner_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, calls


def test_registers_an_ephemeral_runner_with_the_labels_from_mlops_yaml(tmp_path: Path) -> None:
    proc, calls = register(tmp_path, gpu=True)
    assert proc.returncode == 0, proc.stderr
    labels = [
        label
        for label in yaml.safe_load((ROOT / "mlops.yaml").read_text())["runners"]["gpu"]
        if label != "self-hosted"
    ]
    args = calls.read_text().split()
    assert "--ephemeral" in args and "--unattended" in args
    assert args[args.index("--labels") + 1] == ",".join(labels)
    assert args[args.index("--token") + 1] == "AAAA-registration"


def test_refuses_a_machine_without_a_gpu_unless_told(tmp_path: Path) -> None:
    proc, calls = register(tmp_path, gpu=False)
    assert proc.returncode == 1
    assert "no usable GPU; set ALLOW_NO_GPU=1" in proc.stderr
    assert not calls.exists()
    proc, calls = register(tmp_path / "again", gpu=False, ALLOW_NO_GPU="1")
    assert proc.returncode == 0, proc.stderr
    assert "--ephemeral" in calls.read_text()


def test_needs_a_registration_token(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(RUNNERS / "register-runner.sh")],
        env={"PATH": os.environ["PATH"], "GITHUB_URL": "https://github.com/acme/models"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "RUNNER_TOKEN" in proc.stderr


def test_arc_values_put_runners_on_gpu_nodes() -> None:
    values = yaml.safe_load((RUNNERS / "arc-gpu-values.yaml").read_text())
    spec = values["template"]["spec"]
    (runner,) = spec["containers"]
    assert runner["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert runner["securityContext"]["allowPrivilegeEscalation"] is False
    assert values["minRunners"] == 0


def test_systemd_unit_runs_unprivileged_and_re_registers() -> None:
    unit = (RUNNERS / "github-runner.service").read_text()
    assert "User=runner" in unit and "NoNewPrivileges=true" in unit
    assert "ExecStartPre=" in unit and "register-runner.sh" in unit and "Restart=always" in unit
