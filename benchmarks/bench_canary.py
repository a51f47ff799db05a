"""How fast a bad canary is rolled back: from its first answered request to its last, with the
reconciler running as it does on a deploy host (`mlops reconcile --watch`), in one run.

    make bench-canary           # or: python -m benchmarks.bench_canary [--interval S]

A real registry, model servers and client: v1 serves staging; v2, whose predictions shift
(every customer churns), is promoted under a rollout (steps 20, 50; threshold 1; checks
min_requests 20 and max_class_shift 0.15) whose analysis interval is scaled down from
Flagger's usual 60 s to --interval (1 s by default). A client sends one-row requests without
pause and notes which version answered each. The reference, in the same run, is the least a
rollback can take by its own settings: one interval (the analysis waits that long after the
canary starts). Writes benchmarks/results/canary.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import ROOT, save


def mlops(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts")}
    return subprocess.run(
        [sys.executable, "-m", "mlops_gitops.cli", *args], cwd=repo, env=env, capture_output=True, text=True
    )


def rolled_back(records: Path, timeout: float) -> float:
    """When the records first say rolled-back (monotonic time); SystemExit after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = records.read_text().splitlines() if records.exists() else []
        if any(json.loads(line).get("result") == "rolled-back" for line in lines):
            return time.monotonic()
        time.sleep(0.1)
    raise SystemExit(f"the bad canary was not rolled back within {timeout:.0f} s")


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--interval", type=int, default=1, help="The rollout's analysis interval, seconds.")
    args = parser.parse_args()
    common.smoke(args)  # the same size: one rollout is the smallest there is

    from tests.engine.helpers import set_manifest
    from tests.engine.registered import SHIFTED, features, register_code, register_version, registry_of
    from tests.engine.workflows import sandbox

    rollout = {"steps": [20, 50], "interval": args.interval, "threshold": 1,
               "checks": {"min_requests": 20, "max_class_shift": 0.15}}  # fmt: skip
    answers: list[tuple[float, int]] = []
    done = threading.Event()
    with common.Run("canary") as run:
        repo = sandbox(run.work / "repo")
        model = "churn"  # this template's own first model, which the sandbox holds
        register_version(repo, model, seed=7)
        canary = register_code(registry_of(repo), model, SHIFTED, "shifted")
        set_manifest(repo, "staging", "v1", version=1)
        run.serving(repo)
        assert mlops(repo, "reconcile", "--env", "staging").returncode == 0
        state = json.loads((repo / ".mlops/servers/staging/churn.json").read_text())
        url = f"http://{state['host']}:{state['port']}/predict"
        rows = json.loads(features(rows=500, seed=11)[0].to_json(orient="records"))

        def client() -> None:
            index = 0
            while not done.is_set():
                body = json.dumps({"dataframe_records": [rows[index % len(rows)]]}).encode()
                request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        answers.append((time.monotonic(), int(answer.headers["X-Model-Version"])))
                except OSError:
                    answers.append((time.monotonic(), 0))
                index += 1

        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        try:
            set_manifest(
                repo, "staging", f"promote v{canary} under a rollout", version=canary, rollout=rollout
            )
            env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts")}
            watch = ["reconcile", "--env", "staging", "--watch", "--interval", "0.5"]
            run.popen([sys.executable, "-m", "mlops_gitops.cli", *watch], cwd=repo, env=env)
            detected = rolled_back(repo / ".mlops/records/staging/churn.jsonl", 120)
            time.sleep(1.0)  # answers after the rollback: none may come from the canary
        finally:
            done.set()
            thread.join()
    by_canary = [at for at, version in answers if version == canary]
    failed = sum(1 for _, version in answers if version == 0)
    first, last = by_canary[0], by_canary[-1]
    seconds = last - first
    summary: dict[str, Any] = {
        "first_to_last_canary_answer_s": round(seconds, 2),
        "reference_interval_s": args.interval,
        "ratio_to_interval": round(seconds / args.interval, 2),
        "canary_answers": len(by_canary),
        "answers": len(answers),
        "failed_requests": failed,
        "canary_answers_after_the_rollback_was_recorded": sum(1 for at in by_canary if at > detected),
        "rollout": rollout,
    }
    out = save("canary", summary)
    print(
        f"bad canary v{canary}: first answer to last {seconds:.2f} s ({len(by_canary)} of {len(answers)} "
        f"answers, {failed} failed), interval {args.interval} s: {summary['ratio_to_interval']}x -> {out}"
    )


if __name__ == "__main__":
    main()
