"""The model server's /metrics (Prometheus' text format, through `prometheus_client`). Its reader,
for `mlops status` and the reconciler, is `core/scrape.py`: the names below are the contract.

Every series is labelled `model`, `environment` and `version` ("none" for a request refused
before a version was chosen). The names, and the nearest metric of KServe's Python model server
and of MLServer (`rest_server_*` is MLServer's REST prefix), for dashboards that span both:

    mlops_requests_total            counter    + protocol, code   MLServer rest_server_requests
    mlops_request_errors_total      counter    + protocol, code   MLServer model_infer_request_failure
    mlops_request_duration_seconds  histogram  + protocol         KServe request_predict_seconds,
                                                      MLServer rest_server_requests_duration_seconds
    mlops_batch_rows                histogram                     MLServer batch_request_queue (nearest)
    mlops_requests_in_flight        gauge      model, env only    MLServer rest_server_requests_in_progress
    mlops_version_loaded_seconds    gauge                         none: seconds since the version was loaded

`protocol` is predict (/predict), mlflow (/invocations) or v2 (the Open Inference Protocol).
"""

from __future__ import annotations

import time
from typing import Any

# Latency buckets (seconds): a one-row scikit-learn prediction is ~1 ms here; a slow model, 1 s.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
NO_VERSION = "none"


class ServerMetrics:
    """One server's metrics, in a registry of its own (never the process-wide default)."""

    def __init__(self, model: str, environment: str):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.base = {"model": model, "environment": environment}
        labels = ["model", "environment", "version"]
        self.requests = Counter(
            "mlops_requests", "Prediction requests answered, by status code.",
            [*labels, "protocol", "code"], registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "mlops_request_errors", "Prediction requests answered with an error (4xx or 5xx).",
            [*labels, "protocol", "code"], registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "mlops_request_duration_seconds", "Seconds from a prediction request to its answer.",
            [*labels, "protocol"], buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.rows = Histogram(
            "mlops_batch_rows", "Rows per prediction request.", labels, buckets=ROW_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "mlops_requests_in_flight", "Prediction requests being answered now.", ["model", "environment"],
            registry=self.registry,
        ).labels(**self.base)  # fmt: skip
        self.loaded = Gauge(
            "mlops_version_loaded_seconds", "Seconds since this version was loaded by this server.", labels,
            registry=self.registry,
        )  # fmt: skip
        self._loaded: set[str] = set()

    def observe(self, version: int | None, protocol: str, code: int, seconds: float, rows: int) -> None:
        """One prediction request, answered."""
        labels = {**self.base, "version": NO_VERSION if version is None else str(version)}
        self.requests.labels(**labels, protocol=protocol, code=str(code)).inc()
        if code >= 400:
            self.errors.labels(**labels, protocol=protocol, code=str(code)).inc()
        if version is not None:
            self.duration.labels(**labels, protocol=protocol).observe(seconds)
            if rows:
                self.rows.labels(**labels).observe(rows)

    def serving(self, versions: set[int]) -> None:
        """The versions loaded now: each one's age gauge starts when it is first seen, and a
        version no longer loaded leaves the exposition."""
        now = {str(v) for v in versions}
        for gone in self._loaded - now:
            self.loaded.remove(*self.base.values(), gone)
        for new in now - self._loaded:
            since = time.monotonic()
            self.loaded.labels(**self.base, version=new).set_function(_age(since))
        self._loaded = now

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _age(since: float) -> Any:
    return lambda: time.monotonic() - since
