"""Our model server against `mlflow models serve`, on the same registered model, in one run.

    make bench-serve            # or: python -m benchmarks.bench_serve [--seconds S] [--rate R]

Both servers load the same MLflow model (a scikit-learn pipeline on the churn table) from
the same registry. For each: throughput with 8 closed-loop clients, then latency p50/p99
under an open-loop 100 requests/s (one record per request, keep-alive connections).
Also the server's own cost: one request at a time on a keep-alive connection (MLflow's
/invocations, one row) against the model's own pyfunc predict of the same row in this process,
and the latency at a steady rate from an external load generator (`hey`, when installed: the
Python clients above share the 2 cores with the server and inflate its p99).
Writes benchmarks/results/serve.json. Goals: faster than MLflow's server; p99 under 50 ms
at 100 requests/s; one request within 1.2x of the model's own predict.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import ROOT, save


def wait_ready(url: str, path: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + path, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url}{path} not ready")


def throughput(port: int, path: str, body: bytes, seconds: float, clients: int = 8) -> float:
    done = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            done[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / seconds


def latency(port: int, path: str, body: bytes, seconds: float, rate: float) -> dict[str, float]:
    """Open loop: requests start on schedule whatever the answers; 16 workers send them."""
    times: list[float] = []
    lock = threading.Lock()
    total = int(seconds * rate)
    schedule = [i / rate for i in range(total)]
    start = time.perf_counter() + 0.2
    cursor = iter(range(total))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            delay = start + schedule[index] - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            began = time.perf_counter()
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            # latency counted from the scheduled time: queueing delay included (no coordinated omission)
            elapsed = time.perf_counter() - min(began, start + schedule[index])
            with lock:
                times.append(elapsed * 1000)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times.sort()
    return {
        "requests": len(times),
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[int(len(times) * 0.99) - 1], 2),
    }


def sequential(port: int, path: str, body: bytes, count: int) -> float:
    """p50 ms of `count` requests one after the other on one keep-alive connection: the server's
    whole cost for one request, nothing queued behind another."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    for _ in range(count):
        began = time.perf_counter()
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 3)


def bare_predict(local: Path, records: list[dict[str, Any]], count: int) -> float:
    """p50 ms of the model's own pyfunc predict on the same row (the frame made each time, as a
    server must): the floor a server's answer stands on."""
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(local))
    times = []
    for _ in range(count):
        began = time.perf_counter()
        model.predict(pd.DataFrame.from_records(records))
        times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 3)


def hey_binary(smoke: bool) -> str | None:
    """`hey` (Debian's package), installed with apt-get when missing and this is root (not for a
    smoke run: no installing in CI)."""
    import shutil

    found = shutil.which("hey")
    if found or smoke or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "hey"], env=env, capture_output=True)
    return shutil.which("hey")


def external(hey: str, port: int, path: str, body: Path, seconds: float, rate: float) -> dict[str, Any]:
    """A steady `rate` req/s from another process (`hey`, 10 workers at rate/10 each), latency
    read from its per-request CSV."""
    import csv
    import io

    workers = 10
    command = [hey, "-z", f"{seconds}s", "-c", str(workers), "-q", f"{rate / workers:g}", "-m", "POST"]
    command += ["-T", "application/json", "-D", str(body), "-o", "csv", f"http://127.0.0.1:{port}{path}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    times = sorted(float(r["response-time"]) * 1000 for r in rows if r.get("status-code") == "200")
    assert times and len(times) == len(rows), done.stderr[-1000:]
    return {
        "tool": "hey",
        "requests": len(times),
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[max(0, int(len(times) * 0.99) - 1)], 2),
    }


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0)
    args = parser.parse_args()
    if common.smoke(args):
        args.seconds, args.rate = 0.5, 20.0

    from mlops_gitops.core.protocols import input_example

    from tests.engine.mlflow_server import free_port

    with common.Run("serve") as run:
        registry, model, version, local = common.registered_model(run.work)
        records = input_example(local)[:1]
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "scripts"),
            "MLFLOW_TRACKING_URI": registry.uri,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # uvicorn
        }
        ours_port, mlflow_port = free_port(), free_port()
        spec = common.server_spec(run.work / "spec.json", model, version, local, run.work / "inference.jsonl")
        run.server(spec, ours_port, env)
        mlflow = [
            str(Path(sys.executable).parent / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{model}/{version}",
        ]
        run.popen([*mlflow, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(mlflow_port)], env=env)
        wait_ready(f"http://127.0.0.1:{ours_port}", "/health")
        wait_ready(f"http://127.0.0.1:{mlflow_port}", "/ping")
        body = json.dumps({"dataframe_records": records}).encode()
        count = 20 if args.smoke else 300
        one = {"bare_predict_p50_ms": bare_predict(local, records, count)}
        for name, port, path in (
            ("ours", ours_port, "/invocations"),
            ("mlflow", mlflow_port, "/invocations"),
        ):
            sequential(port, path, body, 10)  # warm up
            one[f"{name}_p50_ms"] = sequential(port, path, body, count)
        one["ours_over_bare_predict"] = round(one["ours_p50_ms"] / one["bare_predict_p50_ms"], 2)
        one["goal_within_1_2x"] = one["ours_over_bare_predict"] <= 1.2
        hey = hey_binary(args.smoke)
        steady: dict[str, Any] = {"tool": None, "why": "hey is not installed (apt-get install hey)"}
        if hey:
            (run.work / "body.json").write_bytes(body)
            steady = {
                name: external(hey, port, "/invocations", run.work / "body.json", args.seconds, args.rate)
                for name, port in (("ours", ours_port), ("mlflow", mlflow_port))
            }
        results: dict[str, Any] = {}
        for name, port, path in (
            ("ours", ours_port, "/predict"),
            ("mlflow models serve", mlflow_port, "/invocations"),
        ):
            throughput(port, path, body, min(2.0, args.seconds))  # warm up
            results[name] = {
                "throughput_rps": round(throughput(port, path, body, args.seconds), 1),
                **latency(port, path, body, args.seconds, args.rate),
            }
    ours, theirs = results["ours"], results["mlflow models serve"]
    summary = {
        "one_request": one,
        "steady_rate_external": steady,
        "results": results,
        "throughput_ratio": round(ours["throughput_rps"] / theirs["throughput_rps"], 2),
        "p99_ratio": round(ours["p99_ms"] / theirs["p99_ms"], 2),
        "rate_rps": args.rate,
        "goal_p99_under_50ms": ours["p99_ms"] < 50,
    }
    out = save("serve", summary)
    print(f"{'server':<22}{'req/s (8 clients)':>20}{'p50 ms':>10}{'p99 ms':>10}   at {args.rate:.0f} req/s")
    for name, row in results.items():
        print(f"{name:<22}{row['throughput_rps']:>20}{row['p50_ms']:>10}{row['p99_ms']:>10}")
    print(
        f"one request p50: ours {one['ours_p50_ms']} ms, mlflow {one['mlflow_p50_ms']} ms, the model's own "
        f"predict {one['bare_predict_p50_ms']} ms: ours {one['ours_over_bare_predict']}x (goal <= 1.2x)"
    )
    print(f"steady {args.rate:.0f} req/s from hey: {steady}")
    print(f"throughput ratio {summary['throughput_ratio']}x, p99 ratio {summary['p99_ratio']}x -> {out}")


if __name__ == "__main__":
    main()
