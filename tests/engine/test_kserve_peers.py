"""What the `kserve` target ships is fetched, loaded and served by KServe's own code, and its
traffic comes back for drift:

- KServe's storage initializer (`kserve-storage`, the code its init container runs) fetches
  the rendered storageUri; the directory hashes to the sha256 annotation;
- MLServer with `mlserver-mlflow` (the runtime behind `modelFormat: mlflow`, protocol v2)
  loads that directory, and the same v2 client (tritonclient) gets the same scores from it as
  from the local target;
- KServe's logger CloudEvents, in the shape kserve/kserve pkg/logger/worker.go sends them,
  reach `mlops collect`, and `mlops drift` / `mlops feedback` judge that environment.

No cluster runs here. The bucket is `moto` in server mode on loopback (an S3-compatible server
standing in for the bucket); the cluster's health comes from a stand-in `kubectl` on PATH that
answers `get inferenceservice` as kubectl does for an applied, Ready InferenceService (the
rendered one).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import git_commit_all, run_mlops
from . import peers
from .helpers import set_manifest, url_of
from .mlflow_server import free_port
from .test_kserve import _kserve_repo, valid
from .test_protocols import V2_CLIENT

pytestmark = pytest.mark.slow

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# A stand-in for `kubectl get inferenceservice NAME -n NS -o json` against a cluster that applied
# the rendered file and made it Ready: it answers with that file plus a Ready condition.
KUBECTL = """#!/bin/sh
# kubectl stand-in (see the module docstring): get inferenceservice <name> -n <ns> -o json
for a in "$@"; do case "$a" in *-staging) name="$a";; esac; done
exec {python} -c 'import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
doc["status"] = {{"conditions": [{{"type": "Ready", "status": "True"}}]}}
print(json.dumps(doc))' {rendered}
"""


@pytest.fixture
def bucket(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An S3-compatible server on loopback (moto), with the bucket `models` made; the
    environment that points boto3 and kserve-storage at it."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [peers.bin_of("moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with peers.serving(command, f"{endpoint}/moto-api/", tmp_path / "moto" / "log"):
        env = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
        boto3.client("s3", endpoint_url=endpoint, **_boto(env)).create_bucket(Bucket="models")
        yield env


def _boto(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


def configure(repo: Path, **kserve: Any) -> None:
    project = repo / "mlops.yaml"
    config = yaml.safe_load(project.read_text())
    config["deploy"]["kserve"].update(kserve)
    project.write_text(yaml.safe_dump(config, sort_keys=False))
    git_commit_all(repo, "kserve settings")


def rendered(repo: Path, env: str = "staging") -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((repo / f"deploy/kserve/{env}/churn.yaml").read_text())
    return document


def download(uri: str, out: Path, env: dict[str, str]) -> None:
    """KServe's storage initializer, run as its init container runs it (Storage.download)."""
    code = "import sys\nfrom kserve_storage import Storage\nprint(Storage.download(sys.argv[1], sys.argv[2]))"
    peers.run(code, uri, str(out), env=env)


def mlserver(model_dir: Path, name: str, workdir: Path) -> tuple[str, Any]:
    """MLServer with KServe's MLflow runtime, loading `model_dir` as model `name`."""
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    (workdir / "settings.json").write_text(
        json.dumps(
            {
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                "parallel_workers": 0,
                "host": "127.0.0.1",
            }
        )
    )
    model = workdir / name
    model.mkdir()
    (model / "model-settings.json").write_text(
        json.dumps(
            {
                "name": name,
                "implementation": "mlserver_mlflow.MLflowRuntime",
                "parameters": {"uri": str(model_dir)},
            }
        )
    )
    url = f"http://127.0.0.1:{http_port}"
    command = [peers.bin_of("mlserver"), "start", str(workdir)]
    return url, peers.serving(command, f"{url}/v2/models/{name}/ready", workdir / "log", timeout=180)


def v2(url: str, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return json.loads(peers.run(V2_CLIENT, url.removeprefix("http://"), name, json.dumps(rows)))


def post_json(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def tensors(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": i["name"],
            "shape": [len(rows), 1],
            "datatype": i["datatype"],
            "data": [[row[i["name"]]] for row in rows],
        }
        for i in meta["inputs"]
    ]


def test_kserve_fetches_loads_answers_like_the_local_target_and_its_traffic_gives_drift(
    registered: Path, tmp_path: Path, bucket: dict[str, str]
) -> None:
    from mlops_gitops.registry.lineage import sha256_tree

    from .registered import features

    repo = _kserve_repo(registered, tmp_path)
    configure(
        repo,
        model_store="s3://models/churn-team",
        logger_url="http://mlops-collect.models.svc.cluster.local",
        runtime={"name": "kserve-mlserver", "version": "1.7.1", "mlflow": "3.17"},
        health={"from": "kubectl"},
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(
        KUBECTL.format(python=sys.executable, rendered=repo / "deploy/kserve/staging/churn.yaml")
    )
    (bin_dir / "kubectl").chmod(0o755)
    env = {**bucket, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    set_manifest(repo, "staging", "v1 to staging", version=1)
    proc = run_mlops("reconcile", "--env", "staging", "-o", "json", cwd=repo, env_extra=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert result["result"] == "healthy"  # the cluster (stand-in) reported the rendered one Ready

    isvc = rendered(repo)
    valid(isvc)
    model = isvc["spec"]["predictor"]["model"]
    sha = isvc["metadata"]["annotations"]["mlops-gitops.dev/artifact-sha256"]
    assert model["storageUri"] == f"s3://models/churn-team/sha256/{sha}"
    assert (model["runtime"], model["runtimeVersion"]) == ("kserve-mlserver", "1.7.1")
    assert isvc["spec"]["predictor"]["logger"]["mode"] == "all"

    # 2. KServe's storage initializer fetches it; it is byte for byte the registered artifact
    fetched = tmp_path / "mnt-models"
    download(model["storageUri"], fetched, bucket)
    assert sha256_tree(fetched) == sha

    # 3. MLServer loads it; the same v2 client gets the local target's scores
    local = tmp_path / "local"
    shutil.copytree(registered, local, symlinks=True)
    set_manifest(local, "staging", "v1 to staging", version=1)
    assert run_mlops("reconcile", "--env", "staging", cwd=local).returncode == 0
    try:
        X, y = features(rows=300, seed=11, shift=0.9)
        rows = json.loads(X.head(5).to_json(orient="records"))
        name = isvc["metadata"]["name"]  # KServe names the model after its InferenceService
        url, server = mlserver(fetched, name, tmp_path / "mlserver")
        with server:
            on_kserve = v2(url, name, rows)
            on_local = v2(url_of(local), name, rows)
            flat = [[x for row in got["scores"] for x in row] for got in (on_kserve, on_local)]
            assert len(flat[0]) == 10 and flat[0] == pytest.approx(flat[1], rel=1e-9)
            assert [i["name"] for i in on_kserve["metadata"]["inputs"]] == [
                i["name"] for i in on_local["metadata"]["inputs"]
            ]
            # the traffic, as KServe's logger would send it: real MLServer answers
            meta = on_kserve["metadata"]
            all_rows = json.loads(X.to_json(orient="records"))
            exchanges = []
            for start in range(0, len(all_rows), 50):
                chunk = all_rows[start : start + 50]
                request = {"inputs": tensors(chunk, meta)}
                status, response = post_json(f"{url}/v2/models/{name}/infer", request)
                assert status == 200, response
                exchanges.append((uuid.uuid4().hex, request, response))
    finally:
        run_mlops("down", cwd=local)

    # 4. mlops collect takes the CloudEvents and writes the inference log
    port = free_port()
    collect = [sys.executable, "-m", "mlops_gitops.cli", "--repo", str(repo), "collect", "--port", str(port)]
    with peers.serving(collect, f"http://127.0.0.1:{port}/healthz", tmp_path / "collect" / "log"):
        base = f"http://127.0.0.1:{port}/"
        for index, (ce_id, request, response) in enumerate(exchanges):
            # the response first, now and then: they are joined whichever comes first
            order = (
                [("response", response), ("request", request)]
                if index % 2
                else [("request", request), ("response", response)]
            )
            for kind, body in order:
                status, answer = post_json(base, body, peers.cloudevent(kind, ce_id, isvc))
                assert status == 200, answer
        status, answer = post_json(
            base, exchanges[0][1], {"Ce-Specversion": "1.0", "Ce-Id": "x", "Ce-Type": "other"}
        )
        assert status == 400 and "ce-type" in answer["error"]
        bad = peers.cloudevent("request", "y", isvc)
        bad["Ce-Annotations"] = json.dumps(
            {"mlops-gitops.dev/model": "../../etc", "mlops-gitops.dev/environment": "staging"}
        )
        status, answer = post_json(base, exchanges[0][1], bad)
        assert status == 400 and "expected a DNS label" in answer["error"]
        with urllib.request.urlopen(f"{base}healthz") as health:
            counts = json.loads(health.read())
        assert (counts["joined"], counts["pending"], counts["rejected"]) == (len(exchanges), 0, 2)
    log = [
        json.loads(line) for line in (repo / ".mlops/inference/staging/churn.jsonl").read_text().splitlines()
    ]
    assert len(log) == len(exchanges) and sum(len(e["inputs"]) for e in log) == 300
    assert {(e["model"], e["environment"], e["version"], e["role"]) for e in log} == {
        ("churn", "staging", 1, "primary")
    }
    first = next(e for e in log if e["request_id"] == exchanges[0][0])
    assert first["inputs"][0] == all_rows[0] and len(first["outputs"][0]) == 2
    assert first["latency_ms"] == 21.0

    # 5. drift and feedback judge the KServe environment from that log
    from churn_data import make_customers
    from mlflow import MlflowClient
    from mlops_gitops.monitor.drift import md5_file

    train = repo / "pipelines/data/churn/train.csv"
    train.parent.mkdir(parents=True, exist_ok=True)
    make_customers(1500, 7).drop(columns=["customer_id"]).to_csv(train, index=False)
    MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").set_model_version_tag(
        "churn", "1", "mlops.data", json.dumps({"pipelines/data/churn/train.csv": md5_file(train)})
    )
    drift = run_mlops("drift", "--env", "staging", "-o", "json", cwd=repo)
    assert drift.returncode == 1, drift.stdout + drift.stderr  # the shifted rows: drift
    (verdict,) = json.loads(drift.stdout)["results"]
    assert (verdict["status"], verdict["version"], verdict["rows"]) == ("drift", 1, 300)
    labels = tmp_path / "labels.csv"
    with labels.open("w") as out:
        out.write("request_id,row,label\n")
        for (ce_id, _, _), start in zip(exchanges, range(0, 300, 50), strict=True):
            for row in range(50):
                out.write(f"{ce_id},{row},{int(y.iloc[start + row])}\n")
    feedback = run_mlops(
        "feedback", "churn", "--env", "staging", "--labels", str(labels), "-o", "json", cwd=repo
    )
    assert feedback.returncode in (0, 1), feedback.stderr
    assert json.loads(feedback.stdout)["joined"] == 300
