"""The model server's /metrics, read back: scraped, parsed with prometheus_client's own parser,
summarised per version (requests, error rate, p50/p99 latency from the histogram). The reader of
what `serving/metrics.py` exposes, for `mlops status` and the reconciler, which never import the
server's side.
"""

from __future__ import annotations

import math
import urllib.request
from dataclasses import dataclass
from typing import Any


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
