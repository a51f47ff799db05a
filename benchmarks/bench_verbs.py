"""The everyday verbs as a person runs them: `mlops status`, `plan` and `validate`, each a whole
process from a cold start, on a repository of 3 models in 3 environments with their 9 model
servers running (the embedded defaults: sqlite registry, local target).

    make bench-verbs        # or: python -m benchmarks.bench_verbs [--rounds R]

Reference, in the same run: `mlops --version`, the same interpreter loading the same command
(click, the engine's package) and doing nothing else. Reported: each verb's best and median of R
runs, and its ratio to the reference. Goal: each verb under 1.5 s.

Writes benchmarks/results/verbs.json.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import ROOT, save

GOAL_S = 1.5
MODELS = ("alpha", "beta", "gamma")


def mlops(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts"), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mlops_gitops.cli", *args], cwd=repo, env=env, capture_output=True, text=True
    )


def build(run: common.Run, models: tuple[str, ...]) -> Path:
    """`models` (added with `mlops model add`), 3 environments, one version each, all served."""
    from tests.conftest import git_commit_all
    from tests.engine.registered import register_version
    from tests.engine.workflows import sandbox, with_key

    repo = with_key(sandbox(run.work / "repo"))  # production serves signed versions only
    project = repo / "mlops.yaml"
    project.write_text(
        project.read_text().replace("  - name: staging\n", "  - name: qa\n  - name: staging\n", 1)
    )
    shutil.copytree(repo / "environments/staging", repo / "environments/qa")
    for path in (repo / "environments/qa").glob("*.yaml"):
        path.write_text(path.read_text().replace("environment: staging", "environment: qa"))
    first = sorted(p.name for p in (repo / "models").iterdir())[0]
    for name in models:
        done = mlops(repo, "model", "add", name, "--like", first)
        assert done.returncode == 0, done.stderr
    git_commit_all(repo, "three models in three environments")
    for name in models:
        assert register_version(repo, name) == 1
        for path in (repo / "environments").glob(f"*/{name}.yaml"):
            path.write_text(re.sub(r"^version: .*$", "version: 1", path.read_text(), count=1, flags=re.M))
    git_commit_all(repo, "version 1 everywhere")
    run.serving(repo)
    done = mlops(repo, "reconcile")
    assert done.returncode == 0, done.stdout + done.stderr
    return repo


def timed(repo: Path, args: list[str], rounds: int) -> list[float]:
    runs = []
    for _ in range(rounds):
        started = time.perf_counter()
        done = mlops(repo, *args)
        runs.append(time.perf_counter() - started)
        assert done.returncode in (0, 1), (args, done.stderr)
    return runs


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if common.smoke(args):
        args.rounds = 1
    with common.Run("verbs") as run:
        models = MODELS[:1] if args.smoke else MODELS
        print(f"building {len(models)} model(s) x 3 environments, {3 * len(models)} servers ...", flush=True)
        repo = build(run, models)
        serving = mlops(repo, "status", "-o", "json").stdout
        assert serving.count('"health": "healthy"') == 3 * len(models), serving
        reference = timed(repo, ["--version"], args.rounds)
        verbs: dict[str, Any] = {}
        for verb in (["status"], ["plan"], ["validate"]):
            runs = timed(repo, verb, args.rounds)
            verbs[verb[0]] = {
                "best_s": round(min(runs), 3),
                "median_s": round(statistics.median(runs), 3),
                "ratio_to_reference": round(min(runs) / min(reference), 2),
                "goal_under_1_5_s": statistics.median(runs) < GOAL_S,
            }
    summary = {
        "deployments": 3 * len(models),
        "rounds": args.rounds,
        "reference_mlops_version_s": round(min(reference), 3),
        "verbs": verbs,
    }
    print(summary)
    print(f"wrote {save('verbs', summary)}")


if __name__ == "__main__":
    main()
