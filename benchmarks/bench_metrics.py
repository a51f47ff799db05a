"""The cost of /metrics on the serving path: our model server with its Prometheus metrics on,
against the same server with them off (MLOPS_SERVE_METRICS=0), in one run.

    make bench-metrics          # or: python -m benchmarks.bench_metrics [--seconds S] [--rounds N]

Both servers load the same registered model. Throughput with 8 closed-loop clients, one record
per request, measured in alternating rounds (on, off, on, off, ...) so that drift in the
machine's speed falls on both; while the "on" server is measured, /metrics is scraped every
second (Prometheus scrapes every 15 s by default: this is the worse case). Writes
benchmarks/results/metrics.json. Goal: throughput with metrics at least 95% of without. On 2
cores the rounds' spread is a few percent either way, so the in-process cost of counting one
request is measured too, as a share of the time per request.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import urllib.request

from benchmarks import common
from benchmarks.bench_serve import throughput, wait_ready
from benchmarks.common import ROOT, save


def scraping(port: int, stop: threading.Event, scrapes: list[int]) -> None:
    while not stop.wait(1.0):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            answer.read()
            scrapes.append(answer.status)


def counting_cost(requests: int = 100_000) -> float:
    """Seconds one request's counting takes (in-flight up and down, the counters, both histograms)."""
    import time

    from mlops_gitops.serving.metrics import ServerMetrics

    metrics = ServerMetrics("bench", "bench")
    metrics.serving({1})
    started = time.perf_counter()
    for _ in range(requests):
        metrics.in_flight.inc()
        metrics.observe(1, "predict", 200, 0.002, 1)
        metrics.in_flight.dec()
    return (time.perf_counter() - started) / requests


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="Seconds per round.")
    parser.add_argument("--rounds", type=int, default=4, help="Rounds per server.")
    args = parser.parse_args()
    if common.smoke(args):
        args.seconds, args.rounds = 1.5, 1

    from mlops_gitops.core.protocols import input_example

    from tests.engine.mlflow_server import free_port

    rates: dict[str, list[float]] = {"on": [], "off": []}
    scrapes: list[int] = []
    with common.Run("metrics") as run:
        _, model, version, local = common.registered_model(run.work)
        body = json.dumps({"dataframe_records": input_example(local)[:1]}).encode()
        ports = {"on": free_port(), "off": free_port()}
        for name, port in ports.items():
            spec = common.server_spec(
                run.work / f"{name}.json", model, version, local, run.work / f"{name}.jsonl"
            )
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT / "scripts"),
                "MLOPS_SERVE_METRICS": "1" if name == "on" else "0",
            }
            run.server(spec, port, env)
        for port in ports.values():
            wait_ready(f"http://127.0.0.1:{port}", "/health")
            throughput(port, "/predict", body, 1)  # warm up
        for _ in range(args.rounds):
            for name, port in ports.items():
                done = threading.Event()
                scraper = (
                    threading.Thread(target=scraping, args=(port, done, scrapes)) if name == "on" else None
                )
                if scraper:
                    scraper.start()
                try:
                    rates[name].append(throughput(port, "/predict", body, args.seconds))
                finally:
                    done.set()
                    if scraper:
                        scraper.join()
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    cost = counting_cost(2_000 if args.smoke else 100_000)
    summary = {
        "throughput_rps": {"metrics_on": round(on, 1), "metrics_off": round(off, 1)},
        "rounds": {k: [round(r, 1) for r in v] for k, v in rates.items()},
        "scrapes": len(scrapes),
        "ratio_on_to_off": round(on / off, 3),
        # what counting one request costs in-process, against the time per request at this rate
        "counting_us_per_request": round(cost * 1e6, 2),
        "counting_share_of_request_time": round(cost * off, 4),
        "goal_at_least_0_95": on / off >= 0.95,
    }
    out = save("metrics", summary)
    print(f"throughput, 8 clients: metrics on {on:.1f} req/s ({len(scrapes)} scrapes), off {off:.1f} req/s")
    print(f"ratio on/off {summary['ratio_on_to_off']} (goal >= 0.95) -> {out}")
    print(
        f"counting one request: {cost * 1e6:.1f} us, "
        f"{100 * cost * off:.2f}% of the time per request at {off:.0f} req/s"
    )


if __name__ == "__main__":
    main()
