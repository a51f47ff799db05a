"""Our model server against `mlflow models serve`, on the same registered model, in one run.

    make bench-serve            # or: python -m benchmarks.bench_serve [--seconds S] [--rate R]

Both servers load the same MLflow model (a scikit-learn pipeline on the churn table) from
the same registry. For each: throughput with 8 closed-loop clients, then latency p50/p99
under an open-loop 100 requests/s (one record per request, keep-alive connections).
Writes benchmarks/results/serve.json. Goals: faster than MLflow's server; p99 under 50 ms
at 100 requests/s.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
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
        server = [
            sys.executable,
            "-m",
            "mlops_gitops.serving.server",
            "--spec",
            str(spec),
            "--port",
            str(ours_port),
        ]
        run.popen(server, env=env)
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
    print(f"throughput ratio {summary['throughput_ratio']}x, p99 ratio {summary['p99_ratio']}x -> {out}")


if __name__ == "__main__":
    main()
