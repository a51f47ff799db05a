"""A team's own table, not the example's, through the whole life: `mlops model add --data`, the
pipeline with another learner, register with its report, promote, reconcile, answers over
MLflow's /invocations and the v2 protocol, live performance from ground truth, drift, a
challenger compared side by side, and the evidence pack.

Two tables the example never used, made here: a regression (parcel costs, learned by LightGBM,
a built-in learner) and a multiclass one with text labels (service tiers, learned by the team's
own function in pipelines/learners/, a `mlflow.pyfunc.PythonModel`). Everything is real: DVC,
the MLflow registry (sqlite in the copy), the model servers, evidently.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from ..conftest import base_env, dvc_tracked_tables, git_commit_all, pristine, run_mlops, tree_digest
from .workflows import sandbox

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent

# The team's own learner for the multiclass table: a PythonModel of its own making (a scikit-learn
# forest inside, the text columns encoded by it), fitted by the contract's function.
OWN_LEARNER = '''
"""Our tier model: a random forest, wrapped so that it serves class probabilities."""

import mlflow.pyfunc
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


class Tiers(mlflow.pyfunc.PythonModel):
    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.classes_ = list(pipeline.classes_)

    def predict(self, model_input, params=None):
        return self.pipeline.predict_proba(model_input)


def fit(features, target, task, params):
    assert task == "multiclass-classification", task
    text = [c for c in features.columns if features[c].dtype == object]
    encode = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="ignore"), text)], remainder="passthrough"
    )
    forest = RandomForestClassifier(n_estimators=60, random_state=int(params["seed"]))
    return Tiers(Pipeline([("encode", encode), ("forest", forest)]).fit(features, target))
'''


def regression_table(rows: int = 1600, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(["coast", "hills", "plains", "city"], rows)
    weight = rng.gamma(2.0, 3.0, rows)
    distance = rng.uniform(5, 400, rows)
    age = rng.integers(18, 80, rows)
    cost = (
        4 + 1.8 * weight + 0.05 * distance + np.where(region == "hills", 6.0, 0.0) + rng.normal(0, 1.5, rows)
    )
    return pd.DataFrame(
        {
            "parcel_id": [f"p{i:05d}" for i in range(rows)],
            "region": region,
            "weight_kg": weight.round(3),
            "distance_km": distance.round(1),
            "sender_age": age,
            "cost": cost.round(2),
        }
    )


def multiclass_table(rows: int = 1500, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    spend = rng.gamma(2.0, 40.0, rows)
    visits = rng.poisson(6, rows)
    score = spend / 40 + visits / 3 + np.where(plan == "pro", 2.0, 0.0) + rng.normal(0, 0.7, rows)
    tier = np.select([score < 3.2, score < 5.2], ["bronze", "silver"], "gold")
    return pd.DataFrame({"plan": plan, "monthly_spend": spend.round(2), "visits": visits, "tier": tier})


class Team:
    """The copy of a generated repository the team works in, with its own registry."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.env = {"MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}

    def mlops(self, *args: str, ok: tuple[int, ...] = (0,)) -> Any:
        proc = run_mlops(*args, "--output", "json", cwd=self.repo, env_extra=self.env, timeout=900)
        assert proc.returncode in ok, (
            f"mlops {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
        return json.loads(proc.stdout)

    def sh(self, *cmd: str) -> str:
        env = {**base_env(), **self.env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        proc = subprocess.run(cmd, cwd=self.repo, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, (
            f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
        return proc.stdout

    def train(self, model: str) -> None:
        self.sh("dvc", "repro", f"pipelines/dvc.yaml:evaluate@{model}")
        git_commit_all(self.repo, f"Train {model}")

    def set_train(self, model: str, **values: Any) -> None:
        path = self.repo / "pipelines" / "params.yaml"
        text = path.read_text()
        head, _, section = text.partition(f"\n  {model}:\n")
        before, _, train = section.partition("    train:\n")
        for key, value in values.items():
            train, count = re.subn(rf"^(      {key}: ).*$", rf"\g<1>{value}", train, count=1, flags=re.M)
            assert count == 1, key
        path.write_text(f"{head}\n  {model}:\n{before}    train:\n{train}")

    def promote(self, model: str, *extra: str) -> None:
        promoted = self.mlops("promote", model, "--to", "staging", *extra, "--no-checkout", "--no-pr")
        self.sh("git", "merge", "--quiet", "--no-ff", "-m", f"Merge {promoted['branch']}", promoted["branch"])
        applied = self.mlops("reconcile", "--env", "staging")
        assert {r["model"]: r["result"] for r in applied["results"]}[model] == "healthy", applied

    def url(self, model: str) -> str:
        return str(self.mlops("status", model, "--env", "staging")["deployments"][0]["url"])


def report_of(registered: dict[str, Any]) -> dict[str, Any]:
    """The champion/challenger report `register --report` wrote beside its report.md."""
    found: dict[str, Any] = json.loads(
        Path(registered["report"]["path"]).with_name("report.json").read_text()
    )
    return found


def post(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.fixture
def team(tmp_path: Path) -> Any:
    repo = sandbox(tmp_path / "repo")
    pristine(repo)
    git_commit_all(repo, "pristine")
    found = Team(repo)
    yield found
    run_mlops("down", cwd=repo, env_extra=found.env, timeout=300)


def live(team: Team, model: str, tmp_path: Path, rows: str) -> dict[str, Any]:
    """Rows sent as a client would, their labels given back: the live metric."""
    labels = tmp_path / f"{model}-labels.csv"
    options = ["--input", rows, "--labels-out", str(labels), "--batch-size", "4"]
    sent = team.mlops("predict", model, "--env", "staging", *options)
    assert sent["failed"] == {} and sum(sent["versions"].values()) == sent["rows"]
    return dict(team.mlops("feedback", model, "--env", "staging", "--labels", str(labels), ok=(0, 1)))


def test_a_regression_table_of_the_teams_own_with_lightgbm(team: Team, tmp_path: Path) -> None:
    model = "parcel-cost"
    table = tmp_path / "parcels.csv"
    regression_table().to_csv(table, index=False)
    added = team.mlops("model", "add", model, "--data", str(table), "--target", "cost", "--id", "parcel_id")
    assert added["data"]["task"] == "regression" and added["data"]["id_columns"] == ["parcel_id"]
    assert added["data"]["features"]["categorical"] == ["region"]
    assert added["data"]["sensitive_feature_candidates"] == ["region", "sender_age"]  # offered, not chosen
    definition = yaml.safe_load((team.repo / "models" / model / "model.yaml").read_text())
    assert definition["metrics"]["primary"] == "r2" and "fairness" not in definition
    assert definition["drift"]["live_performance"]["metric"] == "r2"
    assert (team.repo / "pipelines" / "sources" / "parcel-cost.csv.dvc").is_file()
    ours = [*(team.repo / "models" / model).iterdir(), *(team.repo / "environments").glob(f"*/{model}.yaml")]
    section = (team.repo / "pipelines" / "params.yaml").read_text().partition(f"\n  {model}:\n")[2]
    assert "churn" not in "\n".join([section, *(p.read_text() for p in ours)]).lower()  # its own words only
    team.set_train(model, learner="lightgbm")
    team.train(model)

    report = report_of(team.mlops("register", model, "--report")["versions"][0])
    assert report["passed"] and set(report["metrics"]) == {"r2", "rmse", "mae"}, report
    assert report["metrics"]["r2"] > 0.8 and set(report["plots"]) == {"predicted", "residuals"}
    team.promote(model, "--version", "1")

    url, example = team.url(model), team.mlops("predict", model, "--env", "staging", "--example")
    answer = post(f"{url}/invocations", example)["predictions"]
    assert len(answer) == 1 and isinstance(answer[0], float)
    v2 = team.mlops("predict", model, "--env", "staging", "--example", "--protocol", "v2")
    output = post(f"{url}/v2/models/{model}/infer", v2)["outputs"][0]
    assert output["data"] == [pytest.approx(answer[0])]

    rows = f"pipelines/data/{model}/test.csv"
    feedback = live(team, model, tmp_path, rows)
    assert feedback["status"] == "ok" and feedback["metric"] == "r2", feedback
    assert feedback["target"]["kind"] == "numerical" and not feedback["target"]["drifted"], feedback
    assert feedback["versions"][0]["live"] == pytest.approx(report["metrics"]["r2"], abs=1e-6)
    drift = team.mlops("drift", model, "--env", "staging", ok=(0, 1))["results"][0]
    assert drift["status"] == "no-drift", drift
    assert drift["prediction"]["kind"] == "numerical" and not drift["prediction"]["drifted"], drift

    # A challenger: another seed, half the traffic, compared on the same requests.
    team.set_train(model, seed=11)
    team.train(model)
    assert team.mlops("register", model)["versions"][0]["version"] == 2
    team.promote(model, "--version", "2", "--canary", "50")
    feedback = live(team, model, tmp_path, rows)
    assert {v["version"] for v in feedback["versions"]} == {1, 2}
    labels = tmp_path / f"{model}-labels.csv"
    compared = team.mlops("compare", model, "--env", "staging", "--labels", str(labels), ok=(0, 1, 3))
    measures = {m["measure"]: m for m in compared["measures"]}
    assert {"r2", "prediction_median", "error_rate"} <= set(measures), measures
    assert measures["r2"]["verdict"] in ("better", "worse", "not enough data")

    pack = tmp_path / "pack.zip"
    evidence = team.mlops("evidence", model, "--env", "staging", "-o", str(pack))
    assert evidence["findings"] == [] and evidence["version"] == 1  # the stable one, beside its canary
    verified = team.mlops("evidence", "verify", str(pack))
    assert verified["ok"] and verified["anchored"], verified

    # Heavier parcels sent further: the inputs move, and the model's answers with them.
    shifted = pd.read_csv(team.repo / rows).assign(weight_kg=lambda f: f.weight_kg * 3, distance_km=390.0)
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    since = datetime.now(UTC).isoformat(timespec="seconds")
    team.mlops("predict", model, "--env", "staging", "--input", str(tmp_path / "shifted.csv"))
    drift = team.mlops("drift", model, "--env", "staging", "--since", since, ok=(0, 1))["results"][0]
    assert drift["status"] == "drift" and drift["prediction"]["drifted"], drift
    assert {"weight_kg", "distance_km"} <= set(drift["drifted_columns"]), drift


def test_a_multiclass_table_with_text_labels_and_the_teams_own_learner(team: Team, tmp_path: Path) -> None:
    model = "service-tier"
    table = tmp_path / "tiers.parquet"
    multiclass_table().to_parquet(table)
    (team.repo / "pipelines" / "learners" / "tiers.py").write_text(OWN_LEARNER)
    added = team.mlops("model", "add", model, "--data", str(table), "--target", "tier")
    assert added["data"]["task"] == "multiclass-classification"
    assert added["data"]["classes"] == ["bronze", "gold", "silver"]
    team.set_train(model, learner="learners.tiers:fit")
    team.train(model)

    report = report_of(team.mlops("register", model, "--report")["versions"][0])
    metrics = report["metrics"]
    assert {"accuracy", "f1_macro", "log_loss", "roc_auc_ovr"} <= set(metrics) and report["passed"], report
    assert set(report["plots"]) == {"confusion"}
    team.promote(model, "--version", "1")

    url, example = team.url(model), team.mlops("predict", model, "--env", "staging", "--example")
    probabilities = post(f"{url}/invocations", example)["predictions"][0]
    assert len(probabilities) == 3 and sum(probabilities) == pytest.approx(1.0)
    v2 = team.mlops("predict", model, "--env", "staging", "--example", "--protocol", "v2")
    output = post(f"{url}/v2/models/{model}/infer", v2)["outputs"][0]
    assert output["shape"] == [1, 3] and output["data"] == pytest.approx(probabilities)

    rows = f"pipelines/data/{model}/test.csv"
    feedback = live(team, model, tmp_path, rows)
    assert feedback["status"] == "ok" and feedback["metric"] == "accuracy", feedback
    assert feedback["target"]["kind"] == "categorical" and not feedback["target"]["drifted"], feedback
    assert feedback["versions"][0]["live"] == pytest.approx(metrics["accuracy"], abs=1e-6)
    drift = team.mlops("drift", model, "--env", "staging", ok=(0, 1))["results"][0]
    assert drift["status"] == "no-drift", drift
    assert drift["prediction"]["kind"] == "categorical" and not drift["prediction"]["drifted"], drift

    team.set_train(model, seed=12)
    team.train(model)
    team.mlops("register", model)
    team.promote(model, "--version", "2", "--canary", "50")
    live(team, model, tmp_path, rows)
    labels = tmp_path / f"{model}-labels.csv"
    compared = team.mlops("compare", model, "--env", "staging", "--labels", str(labels), ok=(0, 1, 3))
    measures = {m["measure"]: m for m in compared["measures"]}
    assert "accuracy" in measures and any(m.startswith("share_of_class_") for m in measures), measures
    assert set(next(m for k, m in measures.items() if k.startswith("share_of_class_"))["shares"]) == {
        "0",
        "1",
        "2",
    }

    pack = tmp_path / "pack.zip"
    assert team.mlops("evidence", model, "--env", "staging", "-o", str(pack))["findings"] == []
    verified = team.mlops("evidence", "verify", str(pack))
    assert verified["ok"] and verified["anchored"], verified


@pytest.mark.parametrize(
    ("args", "table", "said"),
    [
        (["--data", "missing.csv", "--target", "cost"], None, "--data missing.csv: no such file"),
        (["--data", "{t}", "--target", "price"], "ok", "--target price: no such column"),
        (["--data", "{t}", "--target", "cost", "--task", "binary"], "ok", "--task binary: column 'cost'"),
        (["--data", "{t}", "--target", "parcel_id"], "ok", "--target parcel_id: 1600 distinct labels"),
        (["--data", "{t}", "--target", "cost"], "empty", "no rows"),
        (["--data", "{t}"], "ok", "--data: needs --target COLUMN"),
        (["--data", "{t}", "--target", "cost", "--like", "churn"], "ok", "--like and --data"),
    ],
)
def test_a_table_that_does_not_fit_is_one_line_and_writes_nothing(
    repo: Path, tmp_path: Path, args: list[str], table: str | None, said: str
) -> None:
    path = tmp_path / "parcels.csv"
    if table == "ok":
        regression_table().to_csv(path, index=False)
    elif table == "empty":
        path.write_text("parcel_id,cost\n")
    before = tree_digest(repo)
    proc = run_mlops("model", "add", "parcels", *[a.replace("{t}", str(path)) for a in args], cwd=repo)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and said in lines[0], proc.stderr
    assert tree_digest(repo) == before


def test_a_table_at_a_url_is_imported_with_where_it_came_from(team: Team, tmp_path: Path) -> None:
    """`--data URL`: looked at once (`dvc get-url`), then tracked with `dvc import-url`, whose
    .dvc file keeps the URL for `dvc update`; served here by a real HTTP server on loopback."""
    import time

    from .mlflow_server import free_port

    served = tmp_path / "served"
    served.mkdir()
    multiclass_table().to_csv(served / "tiers.csv", index=False)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(served)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/tiers.csv"
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        added = team.mlops("model", "add", "tiers", "--data", url, "--target", "tier")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert added["data"]["task"] == "multiclass-classification" and added["data"]["rows"] == 1500
    tracked = yaml.safe_load((team.repo / "pipelines" / "sources" / "tiers.csv.dvc").read_text())
    assert tracked["deps"][0]["path"] == url  # an import: `dvc update` fetches it again
    copy = pd.read_csv(team.repo / "pipelines" / "sources" / "tiers.csv")
    assert copy.equals(pd.read_csv(served / "tiers.csv"))
    section = yaml.safe_load((team.repo / "pipelines" / "params.yaml").read_text())["models"]["tiers"]
    assert section["data"] == {"source": "sources/tiers.csv"}
    # the repository's own life test (tests/test_life.py) copies it with git's files
    assert dvc_tracked_tables(team.repo) == ["pipelines/sources/tiers.csv"]
