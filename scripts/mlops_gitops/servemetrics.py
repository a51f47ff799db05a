"""The model server's /metrics (Prometheus' text format, through `prometheus_client`), and the
reader `mlops status` and the rollout analysis use: scraped, parsed with prometheus_client's own
parser, summarised per version (requests, error rate, p50/p99 latency from the histogram).

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

import math
import time
import urllib.request
from dataclasses import dataclass
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


# -- reading it back -------------------------------------------------------------------------------
@dataclass
class VersionStats:
    version: str
    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] | None = None  # upper bound -> cumulative count (all protocols)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def quantile(self, q: float) -> float | None:
        """Prometheus' histogram_quantile: linear interpolation inside the bucket holding the
        q-th observation (seconds); None without observations."""
        if not self.buckets:
            return None
        bounds = sorted(self.buckets)
        total = self.buckets[bounds[-1]]
        if not total:
            return None
        rank, lower, below = q * total, 0.0, 0.0
        for bound in bounds:
            count = self.buckets[bound]
            if count >= rank:
                if math.isinf(bound):
                    return lower  # beyond the last finite bucket: its bound, as Prometheus answers
                return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1)
            lower, below = bound, count
        return lower

    def to_dict(self) -> dict[str, Any]:
        p50, p99 = self.quantile(0.5), self.quantile(0.99)
        return {
            "version": self.version,
            "requests": int(self.requests),
            "errors": int(self.errors),
            "error_rate": None if self.error_rate is None else round(self.error_rate, 4),
            "p50_ms": None if p50 is None else round(p50 * 1000, 2),
            "p99_ms": None if p99 is None else round(p99 * 1000, 2),
        }


def parse(text: str) -> dict[str, VersionStats]:
    """Per-version totals of an exposition, read with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    stats: dict[str, VersionStats] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            version = sample.labels.get("version")
            if version is None:
                continue
            entry = stats.setdefault(version, VersionStats(version))
            if sample.name == "mlops_requests_total":
                entry.requests += sample.value
            elif sample.name == "mlops_request_errors_total":
                entry.errors += sample.value
            elif sample.name == "mlops_request_duration_seconds_bucket":
                bound = float(sample.labels["le"])
                entry.buckets = entry.buckets or {}
                entry.buckets[bound] = entry.buckets.get(bound, 0.0) + sample.value
    return stats


def scrape(url: str, timeout: float = 3.0) -> dict[str, VersionStats]:
    """GET <url>/metrics and parse it; {} when the server does not answer."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=timeout) as answer:
            return parse(answer.read().decode())
    except (OSError, ValueError):
        return {}
