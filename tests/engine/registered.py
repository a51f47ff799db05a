"""Register real model versions in a real MLflow registry, fast, for the deployment tests.

`mlops register` needs the whole DVC pipeline first (tested in test_train_register); the
reconciler's tests need several versions in seconds. These are real MLflow models (a
scikit-learn pipeline on the pipeline's own synthetic churn table), registered through the
engine's registry adapter with the tags `mlops register` writes that deployment and the
promotion gate read: the artifact's sha256, the signature flag, metrics, lineage and a
passing report (fixed values: these tests judge deployment). A version whose predict raises
comes from `register_broken` below.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from ..conftest import ROOT

sys.path.insert(0, str(ROOT / "pipelines" / "stages"))


# Two versions from code for the analysed canary's tests and the runbooks: one whose predictions
# shift (every customer churns), one that is slow.
SHIFTED = "return np.tile([0.05, 0.95], (len(model_input), 1))"
SLOW = "time.sleep(0.06)\nreturn np.tile([0.8, 0.2], (len(model_input), 1))"

# what the evaluate stage measures for model.yaml's sensitive feature (fixed values, like the rest)
FAIRNESS = {
    "fairness.age.demographic_parity_difference": 0.02,
    "fairness.age.equalized_odds_difference": 0.05,
}


def features(rows: int = 400, seed: int = 7, shift: float = 0.0) -> Any:
    from churn_data import TARGET, make_customers

    frame = make_customers(rows, seed, shift)
    return frame.drop(columns=[c for c in (TARGET, "customer_id") if c in frame.columns]), frame[TARGET]


def registry_of(repo: Path) -> Any:
    from mlops_gitops.core.config import load_repo
    from mlops_gitops.registry.client import Registry

    return Registry(load_repo(repo))


def register_version(repo: Path, model: str, seed: int = 7) -> int:
    """Log and register one scikit-learn version of `model` in repo's registry; its number."""
    import mlflow
    from mlflow.models import infer_signature
    from mlops_gitops.registry import attestation
    from mlops_gitops.registry.client import stored_sha256
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    registry = registry_of(repo)
    registry.ensure_registered_model(model)
    X, y = features(seed=seed)
    categorical = [c for c in X.columns if X[c].dtype == object]
    numeric = [c for c in X.columns if c not in categorical]
    estimator = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), categorical), (StandardScaler(), numeric)
        ),
        LogisticRegression(max_iter=500, C=1.0 / seed),
    ).fit(X, y)
    example = X.head(3)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        with mlflow.start_run(experiment_id=registry.experiment_id()) as run:
            info = mlflow.sklearn.log_model(
                estimator,
                name="model",
                signature=infer_signature(example, estimator.predict_proba(example)),
                input_example=example,
                pyfunc_predict_fn="predict_proba",
                serialization_format="cloudpickle",
                pip_requirements=["scikit-learn", "pandas", "cloudpickle"],
            )
    version = registry.client.create_model_version(
        model,
        info.model_uri,
        run_id=run.info.run_id,
        tags={
            "mlops.artifact_sha256": stored_sha256(info.model_uri),
            "mlops.signature": "true",
            "mlops.git.commit": "0" * 40,
            "mlops.metrics": json.dumps({"roc_auc": 0.84, "f1": 0.6, **FAIRNESS}),
            "mlops.data": json.dumps({"pipelines/data/churn/raw.csv": "md5"}),
            "mlops.params": json.dumps({"seed": seed}),
            "mlops.device": "cpu",
            "mlops.report.passed": "true",
            "mlops.report.baseline": "none",
        },
        model_id=info.model_id,
    )
    attestation.sign_version(registry, model, int(version.version))  # with the repo's key, if any
    return int(version.version)


def register_broken(registry: Any, model: str, good_calls: int = 0) -> int:
    """The demo's broken version (`mlops_gitops.demo.register_broken`: one way to make it)."""
    from mlops_gitops.demo import register_broken as broken

    return broken(registry, model, good_calls)


def register_code(registry: Any, model: str, predict_body: str, name: str = "code") -> int:
    """A version from code whose predict runs `predict_body` (`mlops_gitops.demo.register_code`);
    the analysed canary's tests use it for a version whose predictions shift and one that is slow."""
    from mlops_gitops.demo import register_code as from_code

    return from_code(registry, model, predict_body, name)
