"""/metrics of a real model server, scraped over HTTP and parsed with prometheus_client's own
parser; `mlops status` reads the same numbers back."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from ..conftest import run_mlops
from .helpers import example, http, set_manifest, url_of


def families(url: str) -> dict[str, object]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        return {f.name: f for f in text_string_to_metric_families(answer.read().decode())}


def value(family: object, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in family.samples  # type: ignore[attr-defined]
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.mark.slow
def test_metrics_parse_and_count_every_request_by_version(served: Path) -> None:
    repo = served
    set_manifest(repo, "staging", "v1", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    split = [{"version": 1, "percent": 50}, {"version": 2, "percent": 50}]
    set_manifest(repo, "staging", "split", traffic=split)
    assert run_mlops("reconcile", "--env", "staging", cwd=repo).returncode == 0
    url, rows = url_of(repo), example(repo)
    answered = {1: 0, 2: 0}
    for _ in range(40):
        status, body = http("POST", f"{url}/predict", {"dataframe_records": rows[:2]})
        assert status == 200
        answered[body["version"]] += 1
    mlflow_status, _ = http("POST", f"{url}/invocations", {"dataframe_records": rows[:1]})
    bad = [http("POST", f"{url}/predict", {"dataframe_records": [{"nope": 1}]})[0] for _ in range(3)]
    assert mlflow_status == 200 and bad == [400, 400, 400]

    found = families(url)
    base = {"model": "churn", "environment": "staging"}
    requests = found["mlops_requests"]
    for version in (1, 2):
        counted = value(requests, "mlops_requests_total", **base, version=str(version), protocol="predict")
        assert counted == answered[version]
        latency = found["mlops_request_duration_seconds"]
        assert (
            value(latency, "mlops_request_duration_seconds_count", version=str(version), protocol="predict")
            == (answered[version])
        )
        rows_seen = value(found["mlops_batch_rows"], "mlops_batch_rows_sum", version=str(version))
        assert rows_seen >= 2 * answered[version]
        assert (
            value(found["mlops_version_loaded_seconds"], "mlops_version_loaded_seconds", version=str(version))
            > 0
        )
    assert value(requests, "mlops_requests_total", protocol="mlflow", code="200") == 1
    errors = found["mlops_request_errors"]
    assert value(errors, "mlops_request_errors_total", version="none", code="400", protocol="predict") == 3
    assert value(found["mlops_requests_in_flight"], "mlops_requests_in_flight", **base) == 0

    status = json.loads(run_mlops("status", "--env", "staging", "-o", "json", cwd=repo).stdout)
    shown = {m["version"]: m for m in status["deployments"][0]["metrics"]}
    assert set(shown) == {"1", "2"}
    for version in (1, 2):  # every protocol's requests of the version (the one /invocations went to one)
        assert shown[str(version)]["requests"] == value(
            requests, "mlops_requests_total", version=str(version)
        )
        assert 0 < shown[str(version)]["p50_ms"] <= shown[str(version)]["p99_ms"] < 1000
    table = run_mlops("status", "--env", "staging", cwd=repo).stdout
    assert "p50/p99" in table and "v1 " in table


def test_quantiles_follow_prometheus_histogram_quantile() -> None:
    from mlops_gitops.core.scrape import parse

    text = "\n".join(
        [
            "# TYPE mlops_request_duration_seconds histogram",
            *(
                f'mlops_request_duration_seconds_bucket{{version="3",le="{le}"}} {n}'
                for le, n in (("0.01", 50), ("0.1", 90), ("1.0", 100), ("+Inf", 100))
            ),
            'mlops_request_duration_seconds_count{version="3"} 100',
            'mlops_request_duration_seconds_sum{version="3"} 5.0',
            "# TYPE mlops_requests counter",
            'mlops_requests_total{version="3",code="200"} 98',
            'mlops_requests_total{version="3",code="500"} 2',
            "# TYPE mlops_request_errors counter",
            'mlops_request_errors_total{version="3",code="500"} 2',
            "",
        ]
    )
    stats = parse(text)["3"]
    assert stats.quantile(0.5) == pytest.approx(0.01)  # the 50th observation closes the first bucket
    assert stats.quantile(0.7) == pytest.approx(0.01 + 0.09 * 0.5)  # halfway through the second
    assert stats.quantile(0.99) == pytest.approx(0.1 + 0.9 * 0.9)
    assert stats.to_dict()["error_rate"] == 0.02 and stats.to_dict()["requests"] == 100
