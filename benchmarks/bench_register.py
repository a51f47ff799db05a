"""Wall time of `dvc repro` + `mlops register` on the example, split into imports, MLflow
database set-up and the work itself; the work is compared with bare MLflow (log_model +
create_model_version of the same estimator, no lineage) measured in the same run.

    make bench-register            # or: python -m benchmarks.bench_register [--repeat N]

Prints a table and writes benchmarks/results/register.json. Goal: register's own work
under 3 s once imports are done.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks import common
from benchmarks.common import report, timed


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if common.smoke(args):
        repeat = 1
    with common.Run("register") as run:
        measure(repeat, run.work)


def measure(repeat: int, work: Path) -> None:

    modules = ("mlflow.sklearn", "skops.io", "pandas")
    t_import, _ = timed(lambda: [__import__(name) for name in modules])
    import joblib
    import mlflow
    import pandas as pd
    import skops.io
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from mlops_gitops.core.config import load_repo
    from mlops_gitops.registry.client import Registry

    from tests.engine.workflows import sandbox

    repo = sandbox(work / "repo")
    env = {
        **os.environ,
        "PYTHONPATH": str(repo / "scripts"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    t_repro, proc = timed(
        lambda: subprocess.run(
            [str(Path(sys.executable).parent / "dvc"), "repro", "pipelines/dvc.yaml"],
            cwd=repo,
            env=env,
            capture_output=True,
        )
    )
    assert proc.returncode == 0, proc.stderr
    t_noop, _ = timed(
        lambda: subprocess.run(
            [str(Path(sys.executable).parent / "dvc"), "repro", "pipelines/dvc.yaml"],
            cwd=repo,
            env=env,
            capture_output=True,
        )
    )
    config = load_repo(repo)
    model = sorted(config.models)[0]
    estimator = joblib.load(repo / f"pipelines/out/{model}/model.joblib")
    test = pd.read_csv(repo / f"pipelines/data/{model}/test.csv")
    features = test.drop(columns=["churned", "customer_id"])

    setups, ours, again, bare = [], [], [], []
    for i in range(repeat):
        db = f"sqlite:///{work / f'ours-{i}.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = db
        setups.append(timed(lambda db=db: MlflowClient(db).search_experiments())[0])
        registry = Registry(config)
        ours.append(timed(lambda registry=registry: registry.register(model))[0])
        again.append(timed(lambda registry=registry: registry.register(model))[0])

        ref_db = f"sqlite:///{work / f'bare-{i}.db'}"
        MlflowClient(ref_db).search_experiments()
        mlflow.set_tracking_uri(ref_db)

        def reference(ref_db: str = ref_db, i: int = i) -> None:
            client = MlflowClient(ref_db)
            exp = client.create_experiment(f"bare-{i}", artifact_location=(work / f"bare-{i}-art").as_uri())
            example = features.head(5)
            with mlflow.start_run(experiment_id=exp):
                info = mlflow.sklearn.log_model(
                    estimator,
                    name="model",
                    input_example=example,
                    signature=infer_signature(example, estimator.predict_proba(example)),
                    pip_requirements=["scikit-learn", "pandas", "numpy", "skops"],
                    skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(estimator)),
                )
            client.create_registered_model(model)
            client.create_model_version(model, info.model_uri, model_id=info.model_id)

        bare.append(timed(reference)[0])

    result = {
        "imports_s": round(t_import, 2),
        "dvc_repro_s": round(t_repro, 2),
        "dvc_repro_noop_s": round(t_noop, 2),
        "mlflow_db_setup_s": round(statistics.median(setups), 2),
        "register_work_s": round(statistics.median(ours), 2),
        "register_again_s": round(statistics.median(again), 3),
        "bare_mlflow_s": round(statistics.median(bare), 2),
        "ratio_register_vs_bare_mlflow": round(statistics.median(ours) / statistics.median(bare), 2),
        "repeat": repeat,
        "goal_register_under_3s": statistics.median(ours) < 3.0,
    }
    report("register", result)


if __name__ == "__main__":
    main()
