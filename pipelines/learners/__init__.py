"""The team's own training code: one module per learner, named in params.yaml.

A model's `train.learner` is either a built-in (`auto`, `hist_gradient_boosting`, `xgboost`,
`lightgbm`: pipelines/stages/learners.py) or `learners.<module>:<function>`, a function in a
module of this folder. DVC retrains a model when this folder changes. The contract:

    def fit(features: pandas.DataFrame, target: pandas.Series, task: str, params: dict) -> model

- `features`: the training rows without the target and the id columns (model.yaml's
  `target_column` and `id_columns`), columns as the table has them (text stays text: encode it
  inside the model, so that it serves the same rows it was trained on).
- `task`: model.yaml's `task`, one of `binary-classification`, `multiclass-classification`,
  `regression`.
- `params`: the model's `train:` section of params.yaml, with `device` (`cpu` or `cuda`) set to
  what the runner has.

It returns a fitted model that MLflow can log, either
- a scikit-learn estimator: anything with `predict` and, for a classifier, `predict_proba` and
  `classes_` (a `Pipeline`, XGBoost's or LightGBM's scikit-learn classes). It is logged with
  `mlflow.sklearn` and serves `predict_proba` for a classifier, `predict` for a regressor; or
- an `mlflow.pyfunc.PythonModel` whose `predict(model_input, params=None)` returns each row's
  class probabilities (and which has `classes_`) for a classifier, or a number for a regressor.
  It is logged with `mlflow.pyfunc`, this folder shipped with it (`code_paths`).

What the stage checks before anything is written: the function exists, and what it returns
has what the task needs. The evaluate stage measures it; `mlops register` logs it.
"""
