"""GPU selection and the runner's GPU check.

No NVIDIA GPU or driver exists on this machine or in CI, so the driver's `nvidia-smi` is
replaced by small scripts on PATH that answer as a driver would; everything else is real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT

sys.path.insert(0, str(ROOT / "pipelines"))
from stages.train import choose, cuda_devices

CHECK = ROOT / "scripts" / "runners" / "check-nvidia.sh"
GPU = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0000)"


@pytest.mark.parametrize(
    ("learner", "device", "gpus", "xgb", "expected"),
    [
        ("auto", "auto", [], False, ("hist_gradient_boosting", "cpu")),
        ("auto", "auto", [], True, ("hist_gradient_boosting", "cpu")),
        ("auto", "auto", [GPU], False, ("hist_gradient_boosting", "cpu")),
        ("auto", "auto", [GPU], True, ("xgboost", "cuda")),
        ("auto", "cpu", [GPU], True, ("hist_gradient_boosting", "cpu")),
        ("xgboost", "auto", [], True, ("xgboost", "cpu")),
        ("xgboost", "cuda", [GPU], True, ("xgboost", "cuda")),
    ],
)
def test_learner_and_device_follow_what_the_machine_has(
    learner: str, device: str, gpus: list[str], xgb: bool, expected: tuple[str, str]
) -> None:
    assert choose(learner, device, gpus, xgb) == expected


def test_asking_for_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match=r"train\.device: cuda, but no NVIDIA GPU is visible"):
        choose("auto", "cuda", [], True)
    with pytest.raises(SystemExit, match="xgboost is not installed"):
        choose("xgboost", "auto", [GPU], False)


def fake_driver(tmp_path: Path, script: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\n" + script)
    (bin_dir / "nvidia-smi").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"}


def test_cuda_devices_reads_the_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = fake_driver(tmp_path, f'[ "$1" = "-L" ] && echo "{GPU}"\n')
    monkeypatch.setenv("PATH", env["PATH"])
    assert cuda_devices() == [GPU]
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert cuda_devices() == []


def test_check_nvidia_without_a_driver(tmp_path: Path) -> None:
    proc = subprocess.run([str(CHECK)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "no NVIDIA driver here (training will use the CPU)" in proc.stderr


def test_check_nvidia_with_a_gpu(tmp_path: Path) -> None:
    env = fake_driver(tmp_path, 'echo "NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB"\n')
    proc = subprocess.run([str(CHECK)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "  NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB" in proc.stdout


def test_check_nvidia_with_a_broken_driver(tmp_path: Path) -> None:
    env = fake_driver(
        tmp_path, 'echo "NVIDIA-SMI has failed because it could not communicate with the driver"\nexit 9\n'
    )
    proc = subprocess.run([str(CHECK)], env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "could not communicate with the driver" in proc.stderr
