"""`make install` with uv against the same with pip, cold and warm, in one run.

    make bench-install          # or: python -m benchmarks.bench_install [--smoke]

Each is `make install VENV=<a new folder>` on this checkout (the whole pinned tool set of
constraints.txt, the project editable, the OPA bindings), with the installer's cache in a folder
of this run's: cold is an empty cache (every wheel fetched from pip's sources, here the
machine's wheel folder and index), warm is the same cache again (what a laptop or a CI runner
with a cache meets after the first time). pip (PIP=1) is the reference. Each environment is
checked to hold the same packages at the same versions. Writes benchmarks/results/install.json.
Goal: warm uv under 60 s. --smoke installs into each a two-package set instead of the tool set.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import ROOT, save


def install(run: common.Run, tool: str, cache: Path, name: str, smoke: bool) -> tuple[float, dict[str, str]]:
    """Seconds to install with `tool` (uv or pip) and its cache folder; the packages it holds."""
    venv = run.work / name
    env = {**os.environ, "UV_CACHE_DIR": str(cache / "uv"), "PIP_CACHE_DIR": str(cache / "pip")}
    env.pop("VIRTUAL_ENV", None)
    started = time.perf_counter()
    if smoke:  # the same two steps as `make install`, on two packages
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        wanted = ["-c", str(ROOT / "constraints.txt"), "PyYAML", "click"]
        if tool == "uv":
            subprocess.run([python, "-m", "pip", "install", "-q", "uv==0.13.9"], env=env, check=True)
            sources = subprocess.run(
                [python, str(ROOT / "scripts" / "uv_sources.py"), python], capture_output=True, text=True
            ).stdout
            command = ["bash", "-c", f'{sources}\nexec "$0" "$@"', str(venv / "bin" / "uv"), "pip", "install"]
            subprocess.run([*command, "-q", "--python", python, *wanted], env=env, check=True)
        else:
            subprocess.run([python, "-m", "pip", "install", "-q", *wanted], env=env, check=True)
    else:
        done = subprocess.run(
            ["make", "install", f"VENV={venv}", *(["PIP=1"] if tool == "pip" else [])],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert ("with uv" in done.stdout) == (tool == "uv"), done.stdout  # it used the installer asked for
    seconds = time.perf_counter() - started
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    packages = dict(
        line.lower().replace("_", "-").split("==", 1) for line in listed.splitlines() if "==" in line
    )
    for name in ("pip", "uv", "setuptools"):
        packages.pop(name, None)  # the installers themselves
    return seconds, packages


def main() -> None:
    parser = common.parser(__doc__)
    args = parser.parse_args()
    smoke = common.smoke(args)
    times: dict[str, float] = {}
    with common.Run("install") as run:
        sets = {}
        for tool in ("uv", "pip"):
            cache = run.work / f"{tool}-cache"
            times[f"{tool}_cold_s"], sets[f"{tool} cold"] = install(run, tool, cache, f"{tool}-cold", smoke)
            times[f"{tool}_warm_s"], sets[f"{tool} warm"] = install(run, tool, cache, f"{tool}-warm", smoke)
    reference = sets["pip warm"]
    for name, packages in sets.items():
        assert packages == reference, (name, set(packages.items()) ^ set(reference.items()))
    summary: dict[str, Any] = {
        "packages": len(reference),
        **{k: round(v, 1) for k, v in times.items()},
        "uv_over_pip_warm": round(times["uv_warm_s"] / times["pip_warm_s"], 3),
        "uv_over_pip_cold": round(times["uv_cold_s"] / times["pip_cold_s"], 3),
        "goal_warm_uv_under_60_s": times["uv_warm_s"] < 60,
    }
    out = save("install", summary)
    for key, value in summary.items():
        print(f"{key:<24} {value}")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
