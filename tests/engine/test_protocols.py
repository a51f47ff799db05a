"""One inference protocol everywhere: the local model server answers the Open Inference
Protocol (v2) as KServe's MLflow runtime does and MLflow's scoring protocol as `mlflow models
serve` does, besides its own /predict. Every client here is the peer's own code:
`tritonclient[http]` for v2 (in the peers' environment), MLflow's `ScoringServerClient` for
/invocations, and `mlflow models serve` itself for the answers to compare with."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ..conftest import run_mlops
from . import peers
from .helpers import example, http, set_manifest, url_of
from .mlflow_server import free_port

pytestmark = pytest.mark.slow

# A v2 client as a team writes it: the inputs built from the model's metadata, JSON tensors
# (KServe's MLflow runtime takes no binary ones), the scores read by the output's name.
V2_CLIENT = r"""
import json, sys
import numpy as np
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

url, name, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = http.InferenceServerClient(url)
meta = client.get_model_metadata(name)

def inputs(binary):
    made = []
    for spec in meta["inputs"]:
        kind = object if spec["datatype"] == "BYTES" else None
        column = np.array([[row[spec["name"]]] for row in rows], dtype=kind)
        tensor = http.InferInput(spec["name"], list(column.shape), spec["datatype"])
        tensor.set_data_from_numpy(column, binary_data=binary)
        made.append(tensor)
    return made

answer = client.infer(name, inputs(False), request_id="req-v2-1")
try:
    client.infer(name, inputs(True))
    binary = "accepted"
except InferenceServerException as exc:
    binary = str(exc)
print(json.dumps({
    "live": client.is_server_live(),
    "ready": client.is_model_ready(name),
    "metadata": meta,
    "response": answer.get_response(),
    "scores": answer.as_numpy("output-1").tolist(),
    "binary": binary,
}))
"""


def deploy(repo: Path, **fields: Any) -> str:
    set_manifest(repo, "staging", "to staging", **fields)
    proc = run_mlops("reconcile", "--env", "staging", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return url_of(repo)


def v2_client(url: str, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return json.loads(peers.run(V2_CLIENT, url.removeprefix("http://"), name, json.dumps(rows)))


def test_a_v2_client_gets_the_predict_answers_under_both_names(served: Path) -> None:
    repo = served
    url = deploy(repo, version=1)
    rows = example(repo)
    status, own = http("POST", f"{url}/predict", {"dataframe_records": rows})
    assert status == 200
    for name in ("churn", "churn-staging"):  # its own name, and its InferenceService's
        got = v2_client(url, name, rows)
        assert got["live"] and got["ready"]
        assert [i["name"] for i in got["metadata"]["inputs"]] == list(rows[0])
        assert {i["datatype"] for i in got["metadata"]["inputs"]} >= {"INT64", "BYTES"}
        assert got["scores"] == own["predictions"]  # the same version, the same scores
        response = got["response"]
        assert (response["model_name"], response["model_version"], response["id"]) == (
            "churn",
            "1",
            "req-v2-1",
        )
        assert "binary tensor data is not taken" in got["binary"]
    status, answer = http("GET", f"{url}/v2/models/fraud/ready")
    assert status == 404 and "expected churn" in answer["error"]
    status, answer = http("GET", f"{url}/v2/health/ready")
    assert status == 200
    # a v2 request is checked like any other: the field named, a 400
    bad = {"inputs": [{"name": "age", "shape": [1], "datatype": "INT64", "data": [30]}]}
    status, answer = http("POST", f"{url}/v2/models/churn/infer", bad)
    assert status == 400 and "missing" in answer["error"]
    bad = {"inputs": [{"name": "age", "shape": [2], "datatype": "INT64", "data": [30]}]}
    status, answer = http("POST", f"{url}/v2/models/churn/infer", bad)
    assert status == 400 and "inputs[0] (age).data: expected 2 values" in answer["error"]
    log = (repo / ".mlops/inference/staging/churn.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["request_id"] == "req-v2-1" for line in log) == 2  # both names logged


def test_predict_example_prints_a_request_each_protocol_takes(served: Path) -> None:
    """`mlops predict --example`: a valid request for whatever model serves, from a row of the
    input example logged with that version, in MLflow's form and in the v2 protocol's."""
    repo = served
    nothing = run_mlops("predict", "churn", "--env", "staging", "--example", cwd=repo)
    assert nothing.returncode != 0 and "nothing promoted" in nothing.stderr
    neither = run_mlops("predict", "churn", "--env", "staging", cwd=repo)
    assert neither.returncode == 2 and "--example" in neither.stderr
    url = deploy(repo, version=1)
    printed = run_mlops("predict", "churn", "--env", "staging", "--example", cwd=repo)
    assert printed.returncode == 0, printed.stderr
    body = json.loads(printed.stdout)
    assert body == {"dataframe_records": example(repo)[:1]}
    for route in ("/predict", "/invocations"):  # ours, and MLflow's scoring protocol
        status, answer = http("POST", f"{url}{route}", body)
        assert status == 200 and len(answer["predictions"]) == 1, answer
    v2 = json.loads(
        run_mlops("predict", "churn", "--env", "staging", "--example", "--protocol", "v2", cwd=repo).stdout
    )
    assert [t["name"] for t in v2["inputs"]] == list(example(repo)[0])
    status, answer = http("POST", f"{url}/v2/models/churn/infer", v2)
    assert status == 200 and answer["model_version"] == "1", answer


def mlflow_serve(model_dir: Path, log: Path) -> Any:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        str(model_dir),
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    # its scoring server runs `uvicorn` from PATH: this environment's
    path = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return port, peers.serving(command, f"http://127.0.0.1:{port}/ping", log, env=path)


def post(url: str, raw: bytes, content_type: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=raw, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_mlflow_scoring_protocol_answers_as_mlflow_models_serve(served: Path, tmp_path: Path) -> None:
    import mlflow
    import pandas as pd
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    repo = served
    url = deploy(repo, version=1)
    rows = example(repo)
    frame = pd.DataFrame.from_records(rows)
    csv_text = frame.to_csv(index=False).encode()
    raw = [
        ({"dataframe_records": rows}, "application/json"),
        ({"instances": rows}, "application/json"),
        ({"inputs": {name: frame[name].tolist() for name in frame.columns}}, "application/json"),
    ]
    port, server = mlflow_serve(repo / ".mlops/artifacts/churn/v1/model", tmp_path / "serve" / "log")
    answers: dict[str, list[Any]] = {}
    with server:
        for where, host in {"ours": url, "mlflow": f"http://127.0.0.1:{port}"}.items():
            hostname, number = host.removeprefix("http://").split(":")
            client = ScoringServerClient(hostname, int(number))
            client.wait_server_ready(timeout=30)
            assert client.get_version() == mlflow.__version__
            got = [
                client.invoke(frame).get_predictions().to_numpy().tolist(),  # dataframe_split
                client.invoke(rows).get_predictions().to_numpy().tolist(),  # {"inputs": records}
            ]
            for body, kind in raw:
                status, answer = post(f"{host}/invocations", json.dumps(body).encode(), kind)
                assert status == 200, answer
                got.append(answer["predictions"])
            status, answer = post(f"{host}/invocations", csv_text, "text/csv")
            assert status == 200, answer
            got.append(answer["predictions"])
            status, error = post(
                f"{host}/invocations", b'{"dataframe_records": [{"age": "old"}]}', "application/json"
            )
            assert status == 400 and error["error_code"] == "BAD_REQUEST", error
            answers[where] = got
    assert answers["ours"] == answers["mlflow"]
    assert all(len(g) == len(rows) for g in answers["ours"])
    logged = (repo / ".mlops/inference/staging/churn.jsonl").read_text().splitlines()
    assert len([e for e in map(json.loads, logged) if e["role"] == "primary"]) == 6  # every answer logged


def test_every_route_is_split_shadowed_and_logged(served: Path) -> None:
    repo = served
    deploy(repo, version=1)
    url = deploy(
        repo,
        traffic=[{"version": 1, "percent": 50}, {"version": 2, "percent": 50}],
        shadow={"version": 2},
    )
    row = example(repo)[:1]
    status, meta = http("GET", f"{url}/v2/models/churn")
    assert status == 200
    tensors = [
        {"name": i["name"], "shape": [1, 1], "datatype": i["datatype"], "data": [[row[0][i["name"]]]]}
        for i in meta["inputs"]
    ]
    seen: dict[str, list[int]] = {"v2": [], "mlflow": []}
    for i in range(40):
        for route, path, body in (
            ("v2", "/v2/models/churn/infer", {"id": f"v2-{i}", "inputs": tensors}),
            ("mlflow", "/invocations", {"dataframe_records": row}),
        ):
            request = urllib.request.Request(
                f"{url}{path}",
                data=json.dumps(body).encode(),
                method="POST",
                headers={"Content-Type": "application/json", "X-Request-Id": f"{route}-{i}"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                seen[route].append(int(answer.headers["X-Model-Version"]))
    assert set(seen["v2"]) == {1, 2} and set(seen["mlflow"]) == {1, 2}  # both routes split
    status, pinned = http("POST", f"{url}/v2/models/churn/versions/2/infer", {"inputs": tensors})
    assert status == 200 and pinned["model_version"] == "2"
    time.sleep(0.5)  # the shadow answers after the client's
    log = [
        json.loads(line) for line in (repo / ".mlops/inference/staging/churn.jsonl").read_text().splitlines()
    ]
    for route in ("v2", "mlflow"):
        primaries = {e["request_id"]: e["version"] for e in log if e["role"] == "primary"}
        shadows = {e["request_id"] for e in log if e["role"] == "shadow"}
        ids = [f"{route}-{i}" for i in range(40)]
        assert [primaries[r] for r in ids] == seen[route]
        assert set(ids) <= shadows
