"""Register real model versions in a real MLflow registry, fast, for the deployment tests.

`mlops register` needs the whole DVC pipeline first (tested in test_train_register); the
reconciler's tests need several versions, one of them broken, in seconds. These are real
MLflow models (a scikit-learn pipeline on the pipeline's own synthetic churn table, or a
models-from-code pyfunc whose predict raises), registered with the tags `mlops register`
writes that deployment and the promotion gate read: the artifact's sha256, the signature
flag, metrics, lineage and a passing report (fixed values: these tests judge deployment).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "pipelines" / "stages"))

BROKEN_MODEL = """
import mlflow.pyfunc
from mlflow.models import set_model


class Broken(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        raise RuntimeError("this version is broken on purpose")


set_model(Broken())
"""


def features(rows: int = 400, seed: int = 7, shift: float = 0.0) -> Any:
    from churn_data import TARGET, make_customers

    frame = make_customers(rows, seed, shift)
    return frame.drop(columns=[c for c in (TARGET, "customer_id") if c in frame.columns]), frame[TARGET]


def register_version(uri: str, model: str, kind: str = "good", seed: int = 7, tmp: Path | None = None) -> int:
    """Log and register one version; returns its number. kind: good | broken."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from mlops_gitops.lineage import sha256_tree

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    with contextlib.suppress(Exception):
        client.create_registered_model(model)
    X, y = features(seed=seed)
    example = X.head(3)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        experiment = client.get_experiment_by_name("tests") or client.get_experiment(
            client.create_experiment(
                "tests", artifact_location=(Path(uri.removeprefix("sqlite:///")).parent / "mlruns").as_uri()
            )
            if uri.startswith("sqlite")
            else client.create_experiment("tests")
        )
        with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
            if kind == "good":
                from sklearn.compose import make_column_transformer
                from sklearn.linear_model import LogisticRegression
                from sklearn.pipeline import make_pipeline
                from sklearn.preprocessing import OneHotEncoder, StandardScaler

                categorical = [c for c in X.columns if X[c].dtype == object]
                numeric = [c for c in X.columns if c not in categorical]
                estimator = make_pipeline(
                    make_column_transformer(
                        (OneHotEncoder(handle_unknown="ignore"), categorical), (StandardScaler(), numeric)
                    ),
                    LogisticRegression(max_iter=500, C=1.0 / seed),
                ).fit(X, y)
                signature = infer_signature(example, estimator.predict_proba(example))
                info = mlflow.sklearn.log_model(
                    estimator,
                    name="model",
                    signature=signature,
                    input_example=example,
                    pyfunc_predict_fn="predict_proba",
                    serialization_format="cloudpickle",
                    pip_requirements=["scikit-learn", "pandas", "cloudpickle"],
                )
            else:
                folder = Path(tmp or tempfile.mkdtemp())
                code = folder / "broken_model.py"
                code.write_text(BROKEN_MODEL)
                signature = infer_signature(example, [[0.5, 0.5]] * len(example))
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(code),
                    signature=signature,
                    input_example=example,
                    pip_requirements=["mlflow"],
                )
    with tempfile.TemporaryDirectory() as tmpdir:
        local = mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=tmpdir)
        sha = sha256_tree(Path(local))
    version = client.create_model_version(
        model,
        info.model_uri,
        run_id=run.info.run_id,
        tags={
            "mlops.artifact_sha256": sha,
            "mlops.signature": "true",
            "mlops.kind": kind,
            "mlops.git.commit": "0" * 40,
            "mlops.metrics": json.dumps({"roc_auc": 0.84, "f1": 0.6}),
            "mlops.data": json.dumps({"pipelines/data/churn/raw.csv": "md5"}),
            "mlops.params": json.dumps({"seed": seed}),
            "mlops.device": "cpu",
            "mlops.report.passed": "true",
            "mlops.report.baseline": "none",
        },
        model_id=info.model_id,
    )
    return int(version.version)
