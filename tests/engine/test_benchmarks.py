"""Benchmarks cannot rot: each runs at a tiny size (`--smoke`, what `make bench-smoke` runs) and
must finish, write its results and leave nothing running; and what one starts is stopped however
it ends (a crash on purpose, MLOPS_BENCH_CRASH, inside a real `common.Run`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ..conftest import ROOT, base_env

BENCHMARKS = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
MARK = "MLOPS_BENCH_MARK"

pytestmark = pytest.mark.slow


def marked(mark: str) -> list[str]:
    """The command lines of the processes whose environment carries `mark` (what a run started)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if f"{MARK}={mark}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # gone, or not ours to read
    return found


def test_make_bench_smoke_runs_every_benchmark() -> None:
    dry = subprocess.run(
        ["make", "-n", "bench-smoke", "VENV=" + sys.prefix], cwd=ROOT, capture_output=True, text=True
    )
    assert dry.returncode == 0, dry.stderr
    assert sorted(BENCHMARKS) == sorted(b for b in BENCHMARKS if b in dry.stdout) and len(BENCHMARKS) >= 9


@pytest.mark.parametrize("name", BENCHMARKS)
def test_each_benchmark_runs_small_and_leaves_nothing_running(name: str) -> None:
    result = ROOT / "benchmarks" / "results" / "smoke" / f"{name.removeprefix('bench_')}.json"
    result.unlink(missing_ok=True)
    mark = uuid.uuid4().hex
    env = {**base_env(), MARK: mark, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert isinstance(json.loads(result.read_text()), dict)
    assert marked(mark) == []


def test_what_a_run_started_is_stopped_when_it_crashes(tmp_path: Path) -> None:
    from benchmarks.common import CRASH, Run

    mark = uuid.uuid4().hex
    env = {**os.environ, MARK: mark}
    with pytest.raises(RuntimeError, match="on purpose"), Run("crash") as run:
        work = run.work
        run.popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
        os.environ[CRASH] = "1"
        try:
            run.popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
        finally:
            os.environ.pop(CRASH)
    assert marked(mark) == [] and not work.exists()


@pytest.mark.parametrize("package", ["mlflow", "sklearn", "pandas"])
def test_the_installed_tool_set_is_compiled_to_bytecode(package: str) -> None:
    """`make install` compiles every module (uv's --compile-bytecode): where PYTHONDONTWRITEBYTECODE
    is set, as in CI, a module compiled at install is the only kind that is ever cached, and each
    process importing mlflow, pandas and scikit-learn would otherwise compile them again (about
    three times the start). Modules no test imports count too, so this holds wherever it runs."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    sources = list(Path(spec.origin).parent.rglob("*.py"))
    missing = [s for s in sources if not Path(importlib.util.cache_from_source(str(s))).exists()]
    assert len(sources) > 100
    assert missing == [], f"{len(missing)} of {len(sources)} not compiled: {missing[:3]}"
