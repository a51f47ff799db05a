"""A pull request's verdict: a generated repository's pr.yml under act (host mode), wall time of
the whole run and of each job, against the same run of the template at a base revision, side by
side in one run.

    make bench-pr [BASE=rev]     # or: python -m benchmarks.bench_pr [--base REV] [--cold] [--unshared-base]

Both repositories are generated with the same answers (model `credit-risk`), each run twice
and the second run counted (warm: what a pull request meets once the runner has run one).
This template's pr.yml installs its tool set once per constraints.txt into a shared place
(.github/actions/setup) with nothing exported; the base revision's, which had no such step,
reuses this environment through VENV (its best case; --unshared-base measures it the way a
user met it, with every job installing the tool set again). --cold also times this template's
first run on an empty tool cache. Writes benchmarks/results/pr.json. Goal: at most 300 s warm
on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import ROOT, save

# The last revision before the tool set was shared across jobs and the repository's own tests
# were split from the template's (issue 12).
DEFAULT_BASE = "b7d6d84"
ANSWERS = {"project_name": "Credit Risk", "project_slug": "credit-risk", "model_name": "credit-risk"}
BIN = Path(sys.executable).parent


def template_at(rev: str | None, dest: Path) -> Path:
    """The template as committed at `rev`, or this working tree (tracked and untracked files)."""
    if rev is None:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")
        for rel in filter(None, listed):
            if (ROOT / rel).is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, dest / rel)
    else:
        dest.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def generate(template: Path, out: Path) -> Path:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost"}
    env.update(GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost")
    pairs = [f"{k}={v}" for k, v in ANSWERS.items()]
    subprocess.run(
        [str(BIN / "cookiecutter"), "--no-input", str(template), "-o", str(out), *pairs],
        env=env,
        capture_output=True,
        check=True,
    )
    return out / ANSWERS["project_slug"]


def act_run(repo: Path, env: dict[str, str], job: str | None = None) -> dict[str, Any]:
    """One `act pull_request` of pr.yml (or of one job): total seconds, seconds and result per job."""
    started = time.perf_counter()
    proc = subprocess.run(
        [
            str(BIN / "act"),
            "pull_request",
            "-W",
            ".github/workflows/pr.yml",
            "-e",
            "tests/fixtures/events/pull_request.json",
            "--json",
            *(["-j", job] if job else []),
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    total = time.perf_counter() - started
    spans: dict[str, list[float]] = {}
    results: dict[str, str] = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        try:
            entry = json.loads(line)
            moment = datetime.fromisoformat(entry["time"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        job = entry.get("jobID")
        if not job:
            continue
        span = spans.setdefault(job, [moment, moment])
        span[0], span[1] = min(span[0], moment), max(span[1], moment)
        if "jobResult" in entry:
            results[job] = entry["jobResult"]
    return {
        "seconds": round(total, 1),
        "exit": proc.returncode,
        "jobs": {
            job: {"seconds": round(b - a, 1), "result": results.get(job)} for job, (a, b) in spans.items()
        },
    }


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--base", default=DEFAULT_BASE, help="Revision of the template to compare with.")
    parser.add_argument("--cold", action="store_true", help="Also time a first run on an empty tool cache.")
    parser.add_argument(
        "--unshared-base", action="store_true", help="The base without VENV: each job installs anew."
    )
    args = parser.parse_args()
    smoke = common.smoke(args)  # one run of one job (validate), against itself
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for name in ("VENV", "PYTHONPATH", "MLOPS_REPO", "MLOPS_STATE_DIR", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    summary: dict[str, Any] = {"base": "(this tree)" if smoke else args.base, "answers": ANSWERS, "runs": {}}
    with common.Run("pr") as run:
        work = run.work
        head = generate(template_at(None, work / "template-head"), work / "head")
        head_env = {**env, "TOOLS_CACHE": str(work / "tools-cache")}
        if args.cold and not smoke:
            summary["runs"]["head cold (installs the tool set)"] = act_run(head, head_env)
        else:  # this very environment stands for the tool set a first run would have installed
            shared_tools(head, head_env)
        job = "validate" if smoke else None
        if not smoke:
            act_run(head, head_env)  # a first warm run: act's own caches
        summary["runs"]["head warm"] = act_run(head, head_env, job)
        if smoke:
            label, base_s = "base", summary["runs"]["head warm"]["seconds"]
        else:
            base = generate(template_at(args.base, work / "template-base"), work / "base")
            base_env = env if args.unshared_base else {**env, "VENV": sys.prefix}
            label = "base warm (each job installs)" if args.unshared_base else "base warm (VENV exported)"
            act_run(base, base_env)
            summary["runs"][label] = act_run(base, base_env)
            base_s = summary["runs"][label]["seconds"]
    if smoke:
        assert all(r["exit"] == 0 for r in summary["runs"].values()), summary["runs"]
    summary["ratio_head_to_base"] = round(summary["runs"]["head warm"]["seconds"] / base_s, 3)
    for name, done in summary["runs"].items():
        jobs = ", ".join(f"{j} {r['seconds']}s ({r['result']})" for j, r in sorted(done["jobs"].items()))
        print(f"{name:38} {done['seconds']:7.1f} s  exit {done['exit']}  {jobs}")
    print(f"head / base: {summary['ratio_head_to_base']:.3f} (goal: head warm at most 300 s)")
    print(f"results: {save('pr', summary)}")


def shared_tools(head: Path, env: dict[str, str]) -> None:
    """This environment linked where the generated repository's setup looks for its tool set."""
    key = subprocess.run(["make", "-s", "tools-path"], cwd=head, env=env, capture_output=True, text=True)
    path = Path(next(line for line in key.stdout.splitlines() if line.startswith("path=")).split("=", 1)[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(Path(sys.prefix))


if __name__ == "__main__":
    main()
