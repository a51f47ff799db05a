"""The inference log's one format, one writer and one reader, and its one rule about failed
requests, held for every reader: a failed request is traffic (the canary analysis's error
rate, compare's, the evidence's request count) but no answer (no drift row, no feedback join)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mlops_gitops.core import inference_log, state
from mlops_gitops.core.inference_log import Entry, Writer, entry, read, scan
from mlops_gitops.deploy import analysis
from mlops_gitops.evidence.gatherers import inferences
from mlops_gitops.monitor import compare, feedback
from mlops_gitops.monitor.logsample import sample_log

SPEC = {"model": "churn", "environment": "staging"}


def test_what_the_writer_writes_the_reader_reads_back_and_other_formats_are_counted(tmp_path: Path) -> None:
    log = tmp_path / "churn.jsonl"
    writer = Writer(log)
    written = [
        entry(SPEC, "a", 1, "primary", [{"x": 1}], [[0.2, 0.8]], 0.0042),
        entry(SPEC, "a", 2, "shadow", [{"x": 1}], [[0.3, 0.7]], 0.005),
        entry(SPEC, "b", 1, "primary", [{"x": 2}], [], 0.0, "v1: prediction failed: ValueError: x"),
    ]
    for item in written:
        writer.write(item)
    writer.close()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["v"] for line in lines] == [1, 1, 1] and "error" not in lines[0]
    found = read(log)
    assert found.entries == [written[0], written[2]]  # shadow answers are never traffic
    assert [e.answered for e in found.entries] == [True, False] and found.answered() == [written[0]]
    assert found.entries[0].latency_ms == 4.2 and found.offset == log.stat().st_size
    # a line of before the format had a version reads as version 1; a later version is not guessed at
    old = {k: v for k, v in written[0].to_dict().items() if k != "v"} | {"at": "2026-01-01T10:00:00+00:00"}
    later = written[0].to_dict() | {"v": 2}
    log.write_text(json.dumps(old) + "\n" + json.dumps(later) + "\n" + "{not json\n")
    found = read(log)
    assert [e.at for e in found.entries] == ["2026-01-01T10:00:00.000Z"] and found.skipped == 2
    assert list(scan(log)) == [found.entries[0], None, None]


def test_reads_take_whole_lines_from_an_offset_and_start_over_on_a_truncated_log(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    first = json.dumps(entry(SPEC, "r1", 1, "primary", [{}], [[0.5, 0.5]], 0.001).to_dict()) + "\n"
    log.write_text(first + '{"v": 1, "version": 2, "outp')  # a line still being written
    found = read(log)
    assert [e.version for e in found.entries] == [1] and found.offset == len(first)
    assert [e.version for e in scan(log) if e] == [1]
    shadow = json.dumps(entry(SPEC, "r2", 2, "shadow", [{}], [], 0.001).to_dict())
    log.write_text(first + shadow + "\n" + "garbled\n")
    found = read(log, offset=found.offset)
    assert found.entries == [] and found.skipped == 1 and found.offset == log.stat().st_size
    log.write_text(first)  # rotated: shorter than where the window stood
    assert [e.version for e in read(log, offset=found.offset).entries] == [1]


def test_since_compares_moments_whatever_offset_the_line_was_written_with(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    base = entry(SPEC, "r", 1, "primary", [{"x": 1}], [[0.5, 0.5]], 0.001).to_dict()
    stamps = ["2026-01-01T09:59:59.999Z", "2026-01-01T12:00:00+02:00", "2026-01-01T10:00:00.001Z"]
    log.write_text("".join(json.dumps(base | {"at": at, "request_id": at}) + "\n" for at in stamps))
    since = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert [e.request_id for e in read(log, since).entries] == stamps[1:]  # 12:00+02:00 is 10:00 UTC: at
    assert [e.request_id for e in scan(log, since) if e] == stamps[1:]


@pytest.fixture
def traffic(tmp_path: Path) -> Path:
    """A repository root whose staging log holds, per version, 60 answered requests of 2 rows
    and 6 failed ones (the failed ones labelled too)."""
    root = tmp_path / "repo"
    writer = Writer(state.inference_log(root, "staging", "churn"))
    for version in (1, 2):
        for i in range(66):
            failed = i >= 60
            outputs = [] if failed else [[0.9, 0.1], [0.2, 0.8]]
            error = "prediction failed" if failed else None
            writer.write(
                entry(
                    SPEC, f"v{version}-{i}", version, "primary", [{"x": i}, {"x": -i}], outputs, 0.002, error
                )
            )
    writer.close()
    return root


def test_every_reader_counts_a_failed_request_as_traffic_and_never_as_an_answer(traffic: Path) -> None:
    log = state.inference_log(traffic, "staging", "churn")
    entries = inference_log.read(log).entries
    v1, v2 = [e for e in entries if e.version == 1], [e for e in entries if e.version == 2]
    # traffic: the analysis's and compare's error rates, the evidence's request count
    verdict, checks = analysis.judge({"min_requests": 10, "max_error_rate": 0.5}, v2, v1)
    rate = next(c for c in checks if c.name == "max_error_rate")
    assert verdict == analysis.Verdict.PASS and rate.value == round(6 / 66, 4)
    assert compare.errors(v1, v2)["difference"] == 0.0 and compare.errors(v1, v2)["samples"] == 66
    counted = inferences(traffic, "staging", "churn", 2)
    assert (counted["requests"], counted["failed"], counted["rows"]) == (66, 6, 120)
    # no answer: drift's rows, feedback's join, the prediction distribution
    sample = sample_log(log, None, cap=1_000)
    assert sample.total == 240 and sample.versions == {1: 120, 2: 120}
    labels = {f"v2-{i}": [0, 1] for i in range(66)}
    joined, seen, skipped = feedback.join(entries, labels)
    assert len(joined[2]) == 120 and seen == {f"v2-{i}" for i in range(60)} and skipped == 0
    assert len(analysis.answered_rows(v2)) == 120
    assert isinstance(entries[0], Entry)
