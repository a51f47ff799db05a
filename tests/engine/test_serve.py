"""The model server's micro-batching, alone: a stand-in predict function that records each
call (the server's real use is covered against real servers in test_reconcile)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from mlops_gitops.serving.server import Batcher


class Model:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, records: list[dict[str, Any]]) -> list[Any]:
        self.calls.append(len(records))
        if any(r.get("x") == "bad" for r in records):
            raise ValueError("bad row")
        time.sleep(0.05)  # per-call overhead, as a scikit-learn pipeline has
        return [r["x"] * 10 for r in records]


def ask_together(batcher: Batcher, bodies: list[list[dict[str, Any]]]) -> list[Any]:
    answers: list[Any] = [None] * len(bodies)

    def ask(i: int) -> None:
        try:
            answers[i] = batcher.predict(bodies[i])
        except ValueError as exc:
            answers[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return answers


def test_concurrent_requests_share_predict_calls_and_get_their_own_rows() -> None:
    model = Model()
    batcher = Batcher(model.predict)
    bodies = [[{"x": i}, {"x": i + 100}] for i in range(20)]
    answers = ask_together(batcher, bodies)
    assert answers == [[i * 10, (i + 100) * 10] for i in range(20)]
    assert sum(model.calls) == 40 and len(model.calls) < 20  # fewer calls than requests


def test_a_failing_row_fails_only_its_own_request() -> None:
    model = Model()
    batcher = Batcher(model.predict)
    bodies = [[{"x": 1}], [{"x": "bad"}], [{"x": 3}]]
    first = threading.Thread(target=batcher.predict, args=([{"x": 0}],))
    first.start()  # keeps the batcher busy so the three below queue up together
    time.sleep(0.01)
    answers = ask_together(batcher, bodies)
    first.join()
    assert answers[0] == [10] and answers[2] == [30]
    assert isinstance(answers[1], ValueError)
    assert 3 in model.calls  # the three were predicted together once, then retried one by one


def test_a_lone_request_is_predicted_in_its_own_thread_without_a_hand_over() -> None:
    """Nothing else being predicted, the request's thread predicts (no queue, no batch thread
    and back: the one-request latency is the model's); once one runs, the next ones queue."""
    threads: list[str] = []
    model = Model()

    def predict(records: list[dict[str, Any]]) -> list[Any]:
        threads.append(threading.current_thread().name)
        return model.predict(records)

    batcher = Batcher(predict)
    for i in range(3):
        assert batcher.predict([{"x": i}]) == [i * 10]
    assert threads == [threading.current_thread().name] * 3
    answers = ask_together(batcher, [[{"x": i}] for i in range(6)])
    assert answers == [[i * 10] for i in range(6)] and "batcher" in threads[3:]


def test_after_close_requests_are_still_answered() -> None:
    model = Model()
    batcher = Batcher(model.predict)
    assert batcher.predict([{"x": 2}]) == [20]
    batcher.close()
    assert batcher.predict([{"x": 4}]) == [40]  # directly: a request on the old routing is never stuck
    with pytest.raises(ValueError):
        batcher.predict([{"x": "bad"}])


def test_requirement_mismatches_are_mlflows_own_warnings(tmp_path: Path) -> None:
    """The server warns of what MLflow's load_model would (it skips MLflow's check, which maps
    every installed package first): the same mismatches, in MLflow's words, from MLflow's own
    function run on the same requirements."""
    import logging
    from importlib.metadata import version

    from mlflow.utils import requirements_utils
    from mlops_gitops.serving.server import requirement_mismatches

    pandas = version("pandas")
    lines = [
        "# pinned at training",
        f"pandas=={pandas}  # the same: no warning",
        "scikit-learn==0.20.0",
        "numpy<1",
        "no-such-package-mlops==1.0",
        "cloudpickle",
        'colorama==0.0.1; sys_platform == "win32"',
        "--index-url https://example.invalid/simple",
        "",
    ]
    (tmp_path / "requirements.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    python_version: 3.1.4\n")
    ours = requirement_mismatches(tmp_path)

    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(requirements_utils.__name__)
    logger.addHandler(handler)
    try:
        kept = [line.split("  #")[0] for line in lines if line and not line.startswith(("#", "--"))]
        requirements_utils.warn_dependency_requirement_mismatches(kept)
    finally:
        logger.removeHandler(handler)
    theirs = [line.removeprefix(" - ") for line in "\n".join(said).splitlines() if line.startswith(" - ")]
    assert ours[:-1] == theirs and len(theirs) == 3  # scikit-learn, numpy, the missing package
    assert ours[-1].startswith("the model was logged with Python 3.1.4")
