"""The reconciler: a no-op pass over 1,000 manifests, and the time back to the previous version.

    make bench-reconcile        # or: python -m benchmarks.bench_reconcile [--manifests N] [--rounds R]

1. No-op reconcile, in one run over the same N manifests (N/2 models, each with a staging
   and a production manifest, all already deployed and in sync; target kserve in directory
   mode, so "what the target runs" is the rendered InferenceService files, read back, and
   the registry is a real MLflow sqlite store holding the models with both aliases):
     parse  PyYAML's C loader over the same files (the N manifests, N/2 model definitions,
            mlops.yaml and the pipeline's parameters), nothing else: the reference
     load   loading the repository as the deployment verbs do (`load_repo(isolate=True)`:
            every file parsed strictly and schema-checked); goal: within 2x of parse
     strict loading it as `mlops validate` does (the model cards and pipeline sections too),
            reported beside
     ours   the whole no-op reconcile: load, list the registry's aliases, observe every
            deployment, diff, apply (nothing to do); asserts all N are `unchanged`
   Goal: ours within 2x of load.
2. Failed health check to the previous version serving, on the local target with real server
   processes: v1 serves, a version that passes the server's load-time smoke test but fails
   the reconciler's health check is deployed R times; each time the reconciler switches v1
   back. Reported: the reconciler's own figure (`recovery_s`, from the failed check to v1
   answering its smoke test) and what a client polling every 5 ms saw (the longest stretch
   without a v1 answer, and how many requests failed). Goal: under 30 s, and no failed client
   request (during the probation window the server answers a request the new version fails
   with the previous one).

Writes benchmarks/results/reconcile.json.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks import common
from benchmarks.common import ROOT, save


def no_op(work: Path, count: int) -> dict[str, Any]:
    from mlflow import MlflowClient
    from mlops_gitops.core.config import load_repo
    from mlops_gitops.deploy.reconcile import Reconciler, load_desired
    from mlops_gitops.deploy.targets.kserve import KServeTarget, render
    from mlops_gitops.registry.client import Registry

    from tests.engine.workflows import sandbox

    repo_dir = sandbox(work / "noop")
    first = sorted(p.name for p in (repo_dir / "models").iterdir())[0]
    model_text = (repo_dir / "models" / first / "model.yaml").read_text()
    card_text = (repo_dir / "models" / first / "card.md").read_text()
    params_file = repo_dir / "pipelines" / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    environments = sorted(p.name for p in (repo_dir / "environments").iterdir() if p.is_dir())
    templates = {e: (repo_dir / "environments" / e / f"{first}.yaml").read_text() for e in environments}
    for env_dir in (repo_dir / "environments").iterdir():
        for manifest in env_dir.glob("*.yaml"):
            manifest.unlink()
    shutil.rmtree(repo_dir / "models" / first)
    names = [f"m{i:04d}" for i in range(count // len(environments))]
    for name in names:
        (repo_dir / "models" / name).mkdir(parents=True)
        (repo_dir / "models" / name / "model.yaml").write_text(
            re.sub(rf"^name: {first}$", f"name: {name}", model_text, flags=re.MULTILINE)
        )
        (repo_dir / "models" / name / "card.md").write_text(card_text)  # every model has its card
        params["models"][name] = json.loads(json.dumps(params["models"][first]))  # its pipeline section
        for env, template in templates.items():
            text = re.sub(r"^version: .*$", "version: 1", template, flags=re.MULTILINE)
            text = re.sub(rf"^model: {first}$", f"model: {name}", text, flags=re.MULTILINE)
            (repo_dir / "environments" / env / f"{name}.yaml").write_text(text)

    del params["models"][first]
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    repo = load_repo(repo_dir)
    registry = Registry(repo)
    client: MlflowClient = registry.writer()
    print(f"registering {len(names)} models with their aliases ...", flush=True)
    for name in names:
        client.create_registered_model(name)
        client.create_model_version(name, f"file:///nowhere/{name}", tags={"mlops.artifact_sha256": "0" * 64})
        for env in environments:
            client.set_registered_model_alias(name, env, "1")
    target = KServeTarget(repo_dir, {"output_dir": "deploy/kserve"}, registry)
    for desired in load_desired(repo):  # what an earlier reconcile rendered
        path = target.path(desired.environment, desired.model)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = render(desired, "models", {1: f"models:/{desired.model}/1"}, "HEAD", {1: "0" * 64})
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    count = len(names) * len(environments)

    files = [
        *sorted((repo_dir / "environments").glob("*/*.yaml")),
        *sorted((repo_dir / "models").glob("*/model.yaml")),
        repo_dir / "mlops.yaml",
        params_file,
    ]
    floors, ours, parses, loads = [], [], [], []
    for _ in range(3):
        started = time.perf_counter()
        for path in files:
            yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        parses.append(time.perf_counter() - started)

        started = time.perf_counter()
        loaded = load_repo(repo_dir, isolate=True)
        loads.append(time.perf_counter() - started)
        assert len(loaded.manifests) == count and not loaded.invalid

        started = time.perf_counter()
        loaded = load_repo(repo_dir)
        floors.append(time.perf_counter() - started)
        assert len(loaded.manifests) == count

        started = time.perf_counter()
        loaded = load_repo(repo_dir, isolate=True)
        reconciler = Reconciler(
            loaded, registry, KServeTarget(repo_dir, {"output_dir": "deploy/kserve"}, registry)
        )
        outcomes = reconciler.apply(reconciler.plan())
        ours.append(time.perf_counter() - started)
        results = {o.result for o in outcomes}
        assert len(outcomes) == count and results == {"unchanged"}, results
    floor, mine, parse, load = min(floors), min(ours), min(parses), min(loads)
    return {
        "manifests": count,
        "files": len(files),
        "parse_c_loader_s": round(parse, 3),
        "load_s": round(load, 3),
        "load_ratio": round(load / parse, 2),
        "goal_load_within_2x_of_parse": load / parse <= 2,
        "strict_load_s": round(floor, 3),
        "noop_reconcile_s": round(mine, 3),
        "ratio": round(mine / load, 2),
        "goal_within_2x": mine / load <= 2,
    }


class Poller:
    """Predicts every 5 ms; remembers (time, status, version) of every answer."""

    def __init__(self, port: int, body: bytes):
        self.port, self.body = port, body
        self.answers: list[tuple[float, int, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stop.is_set():
            try:
                conn.request("POST", "/predict", self.body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = json.loads(response.read() or b"null")
                version = payload.get("version") if isinstance(payload, dict) else None
                self.answers.append((time.monotonic(), response.status, version))
            except (OSError, http.client.HTTPException):
                self.answers.append((time.monotonic(), 0, None))
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            time.sleep(0.005)

    def longest_gap(self, good: int) -> float:
        """The longest time between two consecutive answers from the good version."""
        times = [t for t, status, version in self.answers if status == 200 and version == good]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def recovery(run: common.Run, rounds: int) -> dict[str, Any]:
    from mlops_gitops.core.protocols import input_example

    from tests.conftest import base_env, git_commit_all
    from tests.engine.registered import register_broken, register_version, registry_of
    from tests.engine.workflows import sandbox

    os.environ.pop("MLFLOW_TRACKING_URI", None)  # mlflow.set_tracking_uri exported the first phase's
    repo = sandbox(run.work / "recovery")
    model = sorted(p.name for p in (repo / "models").iterdir())[0]
    project = repo / "mlops.yaml"
    project.write_text(project.read_text().replace("  target: kserve", "  target: local"))
    manifest = repo / "environments" / "staging" / f"{model}.yaml"
    manifest.write_text(
        re.sub(
            r"^version: .*$",
            "version: 1",
            manifest.read_text().replace("kind: kserve", "kind: local"),
            flags=re.M,
        )
    )
    git_commit_all(repo, "v1 on the local target")
    assert register_version(repo, model) == 1
    flaky = register_broken(registry_of(repo), model, good_calls=1)
    env = {**base_env(), "PYTHONPATH": str(ROOT / "scripts")}

    def reconcile() -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "mlops_gitops.cli", "reconcile", "--env", "staging", "-o", "json"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode in (0, 1), done.stderr
        (result,) = json.loads(done.stdout)["results"]
        return dict(result)

    run.serving(repo)
    first = reconcile()
    assert first["result"] == "healthy", first
    state = json.loads((repo / f".mlops/servers/staging/{model}.json").read_text())
    body = json.dumps(
        {"dataframe_records": input_example(repo / f".mlops/artifacts/{model}/v1/model")[:1]}
    ).encode()
    manifest.write_text(re.sub(r"^version: .*$", f"version: {flaky}", manifest.read_text(), flags=re.M))
    git_commit_all(repo, f"v{flaky}: fails after the switch")
    figures, gaps, failed = [], [], 0
    for _ in range(rounds):
        poller = Poller(int(state["port"]), body)
        poller.thread.start()
        time.sleep(0.3)
        result = reconcile()
        time.sleep(0.3)
        poller.stop.set()
        poller.thread.join()
        assert (result["result"], result["version"]) == ("rolled-back", 1), result
        figures.append(float(result["recovery_s"]))
        gaps.append(poller.longest_gap(1))
        failed += sum(1 for _, status, _ in poller.answers if status != 200)
    return {
        "rounds": rounds,
        "recovery_s_median": round(statistics.median(figures), 3),
        "recovery_s_max": round(max(figures), 3),
        "client_longest_gap_without_v1_s": round(max(gaps), 3),
        "client_failed_requests": failed,
        "goal_under_30s": max(figures) < 30 and max(gaps) < 30,
        "goal_no_failed_request": failed == 0,
    }


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--manifests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if common.smoke(args):
        args.manifests, args.rounds = 20, 1
    with common.Run("reconcile") as run:
        summary = {"no_op": no_op(run.work, args.manifests), "recovery": recovery(run, args.rounds)}
    out = save("reconcile", summary)
    print(json.dumps(summary, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
