"""What every benchmark shares: import paths, quiet tools, where results go, its options (`--smoke`
for a tiny size, what `make bench-smoke` and CI run), and a `Run` that stops whatever the
benchmark started (processes, model servers, its work folder) however it ends.

`MLOPS_BENCH_CRASH=1` makes a benchmark fail on purpose right after it starts something: the
test of `make bench-smoke` uses it to prove that nothing outlives a crash.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "scripts", ROOT):  # the engine, and tests/ (the set-up helpers)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", DVC_NO_ANALYTICS="true")


SMOKE = "MLOPS_BENCH_SMOKE"
CRASH = "MLOPS_BENCH_CRASH"


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The benchmark's options, with --smoke: every step at a tiny size, to prove it still runs
    (its figures mean nothing; they go to benchmarks/results/smoke/)."""
    found = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    found.add_argument("--smoke", action="store_true", help="A tiny size: does it still run? (CI)")
    return found


def smoke(args: argparse.Namespace) -> bool:
    if args.smoke:
        os.environ[SMOKE] = "1"
    return bool(args.smoke)


def timed(fn: Any) -> tuple[float, Any]:
    """(seconds, result) of calling `fn`."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def save(name: str, summary: dict[str, Any]) -> Path:
    """Write benchmarks/results/<name>.json (git-ignored; a smoke run's under smoke/); its path."""
    folder = ROOT / "benchmarks" / "results" / ("smoke" if os.environ.get(SMOKE) else "")
    out = folder / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return out


def report(name: str, summary: dict[str, Any]) -> Path:
    """`save`, then the summary as aligned name/value lines on stdout."""
    path = save(name, summary)
    width = max(map(len, summary))
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    return path


def registered_model(work: Path) -> tuple[Any, str, int, Path]:
    """A sandbox repository under `work` with its first model registered once (a real scikit-learn
    version) and verified into `work/artifacts`: (registry, model, version, its local path)."""
    from tests.engine.registered import register_version, registry_of
    from tests.engine.workflows import sandbox

    repo = sandbox(work / "repo")
    registry = registry_of(repo)
    model = sorted(registry.repo.models)[0]
    version = register_version(repo, model)
    return registry, model, version, registry.fetch_verified(model, version, work / "artifacts").path


def server_spec(path: Path, model: str, version: int, local: Path, log: Path) -> Path:
    """The JSON spec `python -m mlops_gitops.serving.server --spec` runs: one version, all the traffic."""
    primary = [{"version": version, "path": str(local), "percent": 100}]
    spec = {"model": model, "environment": "bench", "primary": primary, "shadow": None, "log": str(log)}
    path.write_text(json.dumps(spec))
    return path


class Run:
    """One benchmark's run: a work folder, and everything it starts, stopped on the way out
    (finished, failed or interrupted): processes terminated (killed if they linger), the model
    servers of repositories it reconciled stopped with `mlops down`, the work folder removed."""

    def __init__(self, name: str):
        self.work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.processes: list[subprocess.Popen[Any]] = []
        self.repos: list[Path] = []

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def popen(self, command: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        process = subprocess.Popen(command, **kwargs)
        self.processes.append(process)
        self.started()
        return process

    def server(self, spec: Path, port: int, env: dict[str, str]) -> subprocess.Popen[Any]:
        """Our model server on `port`, running `spec` (common.server_spec)."""
        command = [
            sys.executable,
            "-m",
            "mlops_gitops.serving.server",
            "--spec",
            str(spec),
            "--port",
            str(port),
        ]
        return self.popen(command, env=env)

    def serving(self, repo: Path) -> None:
        """`repo`'s model servers (started by its reconciles) are stopped at the end."""
        if repo not in self.repos:
            self.repos.append(repo)
        self.started()

    def started(self) -> None:
        if os.environ.get(CRASH):
            raise RuntimeError(f"{CRASH}: a crash on purpose, after starting something")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts")}
        for repo in self.repos:
            command = [sys.executable, "-m", "mlops_gitops.cli", "down"]
            subprocess.run(command, cwd=repo, env=env, capture_output=True, check=False, timeout=120)
        shutil.rmtree(self.work, ignore_errors=True)
