"""The MLflow adapter: register versions with lineage, look up versions and aliases.

MLflow 3 conventions only: `log_model(name=...)`, aliases and tags, never stages.  MLflow
is imported lazily (it takes seconds), so commands that do not touch the registry stay fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import state, tasks
from ..core import tags as names
from ..core.config import Repo
from ..core.errors import ExitCode, MlopsError
from .lineage import PipelineOutputs, collect, sha256_tree

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Artifact downloads are small and local: no progress bars in logs. An unreachable tracking
# server should fail in seconds, not after MLflow's default of 7 retries with backoff.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")

# What a logged model needs to load; naming them spares MLflow its slow requirement inference.
PIP_REQUIREMENTS_PACKAGES = ("scikit-learn", "pandas", "numpy", "skops")
LEARNER_PACKAGES = ("xgboost", "lightgbm")


def tracking_uri(repo: Repo) -> str:
    """MLFLOW_TRACKING_URI wins; a relative sqlite path in mlops.yaml is relative to the repo."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or str(repo.project["registry"]["tracking_uri"])
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((repo.root / uri.removeprefix("sqlite:///")).resolve())
    return uri


def is_local(uri: str) -> bool:
    return urllib.parse.urlparse(uri).scheme in ("sqlite", "file", "")


def sqlite_file(uri: str) -> Path | None:
    """The file of a sqlite registry URI (None for any other kind)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(urllib.parse.unquote(uri.removeprefix("sqlite:///").split("?", 1)[0]))


def no_registry(uri: str) -> str:
    """The one line for a registry that is not there: a sqlite file never made (a fresh clone, act's
    copy of the working tree, another machine), which MLflow would make empty and then answer
    "not found" from."""
    path = sqlite_file(uri)
    return (
        f"registry {uri}: no registry here ({path.name if path else uri} does not exist; the first "
        "`mlops register` makes it). A team's registry: set MLFLOW_TRACKING_URI, with "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (`make act-pr` passes them to act)"
    )


@dataclass(frozen=True)
class Registered:
    model: str
    version: int
    created: bool
    run_id: str
    tags: dict[str, str]


def _load_trained(path: Path, pipelines: Path) -> Any:
    """The pipeline's trained model: a team's own learner (pipelines/learners/) may have returned
    a class of its own, importable from the pipeline's folder as the train stage imported it."""
    import joblib

    added = str(pipelines) not in sys.path
    if added:
        sys.path.insert(0, str(pipelines))
    try:
        return joblib.load(path)
    finally:
        if added:
            sys.path.remove(str(pipelines))


def _log_model(
    estimator: Any, signature: Any, example: Any, requirements: list[str], task: tasks.Task, root: Path
) -> Any:
    """Log what the training contract returned (pipelines/learners/): a PythonModel with
    mlflow.pyfunc, the learners folder shipped with it; anything else with mlflow.sklearn (skops
    format), serving `predict_proba` for a classifier and `predict` for a regressor."""
    import mlflow.pyfunc
    import mlflow.sklearn
    import skops.io

    if isinstance(estimator, mlflow.pyfunc.PythonModel):
        learners = root / "pipelines" / "learners"
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=estimator,
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
            code_paths=[str(learners)] if learners.is_dir() else None,
        )
    return mlflow.sklearn.log_model(
        estimator,
        name="model",
        signature=signature,
        input_example=example,
        pip_requirements=requirements,
        pyfunc_predict_fn=task.predict_fn,
        skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(estimator)),
    )


class Registry:
    def __init__(self, repo: Repo):
        self.repo = repo
        self.uri = tracking_uri(repo)
        self._client: MlflowClient | None = None
        # Only registration may make a sqlite registry file; every other verb reading a file that
        # is not there says so (`no_registry`) instead of letting MLflow make an empty one.
        self._creating = False
        # each registered model's own tags, as the last `aliases()` listing found them (holds
        # are read from there: one listing, not one call per model)
        self.listed_tags: dict[str, dict[str, str]] | None = None

    def missing(self) -> bool:
        """A sqlite registry whose file does not exist (nothing was ever registered here)."""
        path = sqlite_file(self.uri)
        return path is not None and not path.exists()

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            if not self._creating and self.missing():
                raise MlopsError(no_registry(self.uri))
            import mlflow
            from mlflow import MlflowClient

            # set_tracking_uri also exports MLFLOW_TRACKING_URI, which tracking_uri() reads
            # first: put the variable back, so another repository's Registry in this process
            # is not silently pointed at this one's registry.
            before = os.environ.get("MLFLOW_TRACKING_URI")
            mlflow.set_tracking_uri(self.uri)
            if before is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = before
            self._client = MlflowClient(self.uri)
        return self._client

    def writer(self) -> MlflowClient:
        """The MLflow client for making models and versions (a sqlite registry's file is made when
        it is not there yet: the one case where that is wanted)."""
        self._creating = True
        return self.client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call MLflow; an unreachable or broken registry is one clear line, not a traceback."""
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except MlflowException as exc:
            message = str(exc.message if hasattr(exc, "message") else exc).splitlines()[0]
            raise MlopsError(f"registry {self.uri}: {what}: {message}") from None
        except OSError as exc:
            raise MlopsError(f"registry {self.uri}: {what}: {exc}") from None

    def experiment_id(self) -> str:
        self._creating = True
        name = self.repo.project["project"]["slug"]
        found = self._call("get experiment", self.client.get_experiment_by_name, name)
        if found is not None:
            return str(found.experiment_id)
        location = (self.repo.root / "mlruns").resolve().as_uri() if is_local(self.uri) else None
        return str(
            self._call("create experiment", self.client.create_experiment, name, artifact_location=location)
        )

    def ensure_registered_model(self, model: str) -> None:
        from mlflow.exceptions import MlflowException

        definition = self.repo.models[model]
        tags = names.model_tags(definition)
        self._creating = True
        try:
            self.client.create_registered_model(
                model, tags=tags, description=definition.get("description", "")
            )
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise MlopsError(f"registry {self.uri}: create model {model}: {exc.message}") from None

    def register(self, model: str) -> Registered:
        """Log the pipeline's model with its lineage and register it, once per distinct run."""
        if model not in self.repo.models:
            raise MlopsError(
                f"model {model!r}: not defined (expected one of {', '.join(sorted(self.repo.models))})"
            )
        lineage = collect(self.repo.root, model)
        tags = names.lineage_tags(lineage)
        self._creating = True
        query = names.fingerprint_query(model, lineage["fingerprint"])
        found = sorted(
            self._call("search versions", self.client.search_model_versions, query),
            key=lambda v: int(v.version),
        )
        clean = [v for v in found if not names.dirty_inputs(dict(v.tags))]
        existing = (clean or ([] if not lineage["git"]["uncommitted"] else found) or [None])[0]
        if existing is not None:
            return Registered(model, int(existing.version), False, existing.run_id, dict(existing.tags))
        # new, or the same output as a version from uncommitted work, now committed: registered
        # again, so a clean lineage exists for the gate to promote
        return self._log_and_register(model, lineage, tags)

    def _log_and_register(self, model: str, lineage: dict[str, Any], tags: dict[str, str]) -> Registered:
        import mlflow
        import mlflow.pyfunc
        import mlflow.sklearn
        import pandas as pd
        from mlflow.models import infer_signature

        outputs = PipelineOutputs(model, self.repo.root)
        estimator = _load_trained(outputs.estimator, outputs.base)
        definition = self.repo.models[model]
        task = tasks.of(definition)
        features = tasks.features_of(definition, pd.read_csv(outputs.test_data))
        example = features.head(5)
        custom = isinstance(estimator, mlflow.pyfunc.PythonModel)
        answer = estimator.predict if custom else getattr(estimator, task.predict_fn)
        with warnings.catch_warnings():
            # MLflow hints that integer columns cannot hold missing values: the prepare stage
            # refuses rows with missing values, so integer columns are the true schema.
            warnings.filterwarnings("ignore", message=".*integer column.*", category=UserWarning)
            signature = infer_signature(example, answer(example))
        learner = lineage["training"]["learner"]  # a built-in's library is the model's too
        requirements = [
            f"{name}=={lineage['packages'][name]}"
            for name in (*PIP_REQUIREMENTS_PACKAGES, *([learner] if learner in LEARNER_PACKAGES else []))
            if name in lineage["packages"]
        ]
        experiment = self.experiment_id()
        self.ensure_registered_model(model)
        run_name = f"{model}-{lineage['git']['commit'][:8]}"
        # MLflow prints "View run ... at" on stdout; stdout belongs to our result (--output json).
        with (
            contextlib.redirect_stdout(sys.stderr),
            mlflow.start_run(experiment_id=experiment, run_name=run_name) as run,
        ):
            mlflow.log_params(
                {
                    f"{k}.{kk}": vv
                    for k, v in lineage["params"].items()
                    if isinstance(v, dict)
                    for kk, vv in v.items()
                }
            )
            mlflow.log_metrics(lineage["metrics"])
            mlflow.set_tags({k: v for k, v in tags.items() if len(v) <= names.MAX_TAG})
            info = self._call(
                "log model", _log_model, estimator, signature, example, requirements, task, self.repo.root
            )
        tags.update(names.artifact_tags(stored_sha256(info.model_uri)))
        version = self._call(
            "create version",
            self.client.create_model_version,
            model,
            info.model_uri,
            run_id=run.info.run_id,
            tags=tags,
            model_id=info.model_id,
        )
        return Registered(model, int(version.version), True, run.info.run_id, tags)

    def version(self, model: str, ref: str | int) -> Any:
        """A version by number or by alias (`staging`, `production`, `@staging`)."""
        text = str(ref).lstrip("@")
        if text.isdigit():
            return self._call(f"get {model} v{text}", self.client.get_model_version, model, text)
        return self._call(f"get {model}@{text}", self.client.get_model_version_by_alias, model, text)

    def versions(self, model: str) -> list[Any]:
        """Every version of `model` (none when it is not registered)."""
        if self.missing():
            return []
        found = self._call(
            f"list {model}", self.client.search_model_versions, f"name = '{model}'", max_results=10_000
        )
        return list(found)

    def has_version(self, model: str, number: int) -> bool:
        """Whether the registry holds version `number` of `model` (an unreachable one is an error)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_model_version(model, str(number))
            return True
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "INVALID_PARAMETER_VALUE" in str(
                exc.error_code
            ):
                return False
            raise MlopsError(f"registry {self.uri}: get {model} v{number}: {exc.message}") from None

    def alias_version(self, model: str, alias: str) -> Any | None:
        from mlflow.exceptions import MlflowException

        if self.missing():
            return None
        try:
            return self.client.get_model_version_by_alias(model, alias)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "INVALID_PARAMETER_VALUE" in str(
                exc.error_code
            ):
                return None
            raise MlopsError(f"registry {self.uri}: get {model}@{alias}: {exc.message}") from None

    def aliases(self) -> dict[str, dict[str, int]]:
        """Every registered model's aliases ({model: {alias: version}}) in one paged listing."""
        fast = self._listing_from_sqlite()
        if fast is not None:
            return fast
        found: dict[str, dict[str, int]] = {}
        listed: dict[str, dict[str, str]] = {}
        token = None
        while True:
            page = self._call(
                "list models", self.client.search_registered_models, max_results=1000, page_token=token
            )
            for registered in page:
                found[registered.name] = {k: int(v) for k, v in (registered.aliases or {}).items()}
                listed[registered.name] = dict(registered.tags or {})
            token = page.token
            if not token:
                self.listed_tags = listed
                return found

    def _listing_from_sqlite(self) -> dict[str, dict[str, int]] | None:
        """The aliases and model tags of a sqlite registry (the embedded default) read from MLflow's
        own tables, read-only, without importing MLflow (about 1.7 s of every `status` and
        `plan`). None when that cannot be done (another backend, tables not as MLflow 3 writes
        them): MLflow's client then answers. A registry file not made yet holds nothing."""
        import sqlite3

        path = sqlite_file(self.uri)
        if path is None or self._client is not None:
            return None
        if not path.exists():
            self.listed_tags = {}
            return {}
        try:
            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)) as db:
                names = [row[0] for row in db.execute("SELECT name FROM registered_models")]
                aliases = db.execute("SELECT name, alias, version FROM registered_model_aliases").fetchall()
                tags = db.execute("SELECT name, key, value FROM registered_model_tags").fetchall()
        except sqlite3.Error:
            return None
        found: dict[str, dict[str, int]] = {name: {} for name in names}
        listed: dict[str, dict[str, str]] = {name: {} for name in names}
        for name, alias, version in aliases:
            found.setdefault(name, {})[alias] = int(version)
        for name, key, value in tags:
            listed.setdefault(name, {})[key] = value
        self.listed_tags = listed
        return found

    def set_alias(self, model: str, alias: str, version: int) -> None:
        self._call(f"set {model}@{alias}", self.client.set_registered_model_alias, model, alias, str(version))

    def delete_alias(self, model: str, alias: str) -> None:
        self._call(f"delete {model}@{alias}", self.client.delete_registered_model_alias, model, alias)

    def model_tags(self, model: str) -> dict[str, str]:
        """The registered model's own tags (drift status lives there), {} when it is not registered."""
        from mlflow.exceptions import MlflowException

        if self.missing():
            return {}
        try:
            return dict(self.client.get_registered_model(model).tags or {})
        except MlflowException:
            return {}

    def fetch_verified(self, model: str, version: int, store: Path) -> Verified:
        """The version's model directory under `store`, byte-for-byte the one registered.

        Downloaded once into `<store>/<model>/v<N>/model` (through a temporary directory and
        a rename, so a crash leaves no half copy), and its sha256 checked against the
        `artifact_sha256` recorded at registration on every call, cached or not.
        """
        import json
        import shutil

        import mlflow

        found = self.version(model, version)
        expected = version_facts(found)["artifact_sha256"]
        if not expected:
            raise VerifyFailed(
                f"{model} v{version}: no artifact sha256 recorded at registration (expected the tag "
                f"{names.ARTIFACT_SHA256}; register it with `mlops register`)"
            )
        base = store / state.name("model", model) / f"v{int(version)}"
        local = base / "model"
        if not local.is_dir():
            base.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=base) as tmp:
                downloaded = self._call(
                    f"download {model} v{version}",
                    mlflow.artifacts.download_artifacts,
                    artifact_uri=found.source,
                    dst_path=tmp,
                )
                try:
                    Path(downloaded).rename(local)
                except OSError:  # another reconciler (another environment) put it there first
                    if not local.is_dir():
                        raise
        actual = sha256_tree(local)
        if actual != expected:
            shutil.rmtree(local, ignore_errors=True)  # never keep (or serve) an altered copy
            raise VerifyFailed(
                f"{model} v{version}: artifact sha256 {actual[:12]}… differs from the {expected[:12]}… "
                "recorded at registration (expected the registered artifact; it was altered)"
            )
        info = base / "mlops-version.json"  # the lineage tags, for the server's /metadata
        text = json.dumps(dict(sorted(found.tags.items())), indent=2)
        if not info.exists() or info.read_text() != text:
            info.write_text(text)
        return Verified(local, actual)

    def fetch_admitted(self, model: str, version: int, store: Path, env: str) -> Verified:
        """`fetch_verified`, then `env`'s trust policy on its signature (registry.signing):
        VerifyFailed, with the one line that names the version, the signers expected and what was
        found, when the environment does not take it. Nothing is served before this passes."""
        from . import signing

        verified = self.fetch_signed(model, version, store)
        result = signing.check(self.repo, env, verified)
        refused = signing.refusal(self.repo, env, model, version, result)
        if refused:
            raise VerifyFailed(refused)
        return dataclasses.replace(verified, signer=result.signer, signed_by=result.found)

    def fetch_signed(self, model: str, version: int, store: Path) -> Verified:
        """`fetch_verified`, with the version's signature and provenance beside it (what the
        trust policy is checked on; drift and traffic need the files alone)."""
        verified = self.fetch_verified(model, version, store)
        folder = self._signing_folder(self.version(model, version), verified.path.parent)
        return dataclasses.replace(verified, signing=folder)

    def signing_facts(self, model: str, version: int, env: str) -> dict[str, Any]:
        """The gate's facts of a version's signature in `env`, found as `fetch_admitted` finds
        them, from one download: sha256_actual (the artifact as stored now; None when it cannot be
        read), signed (a bundle is named), verified (over exactly the registered files, by a signer
        `env` takes), status, signer (the policy's name), found (whom the bundle names), detail."""
        import mlflow

        from . import signing

        found = self.version(model, version)
        facts: dict[str, Any] = {
            "signed": names.signing_of(dict(found.tags)) is not None,
            "required": signing.required(self.repo, env),
            "sha256_actual": None,
        }
        unread = {"verified": False, "status": "unreadable", "signer": "", "found": ""}
        with tempfile.TemporaryDirectory() as tmp:
            try:
                files = Path(
                    mlflow.artifacts.download_artifacts(artifact_uri=found.source, dst_path=f"{tmp}/m")
                )
            except Exception as exc:  # the gate reports "unverified"; it does not crash on a missing store
                return {
                    **facts,
                    **unread,
                    "detail": f"{model} v{version}: the artifact cannot be read ({exc})",
                }
            facts["sha256_actual"] = actual = sha256_tree(files)
            recorded = version_facts(found)["artifact_sha256"]
            if actual != recorded:
                detail = f"{model} v{version}: the artifact hashes to {actual[:12]}…, not the one recorded"
                return {**facts, **unread, "detail": detail}
            verified = Verified(files, actual, self._signing_folder(found, Path(tmp)))
            result = signing.check(self.repo, env, verified)
        return {**facts, "verified": result.ok, **result.to_dict()}

    def _signing_folder(self, found: Any, base: Path) -> Path | None:
        """The version's signature and provenance, downloaded again on every call (a bundle
        removed or replaced in the registry since the last one counts), into a folder named by
        its files' sha256 under `<base>/signing/`. Nothing there is ever removed or rewritten:
        the reconcilers of two environments share one store (reconcile.yml's matrix runs them at
        once), and one must never delete the bundle the other is checking."""
        claimed = names.signing_of(dict(found.tags))
        if claimed is None:
            return None
        folders = base / "signing"
        folders.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folders) as tmp:
            try:
                got = self.download(found.run_id, claimed["bundle"], Path(tmp))
            except MlopsError:  # a folder that cannot be read is a missing bundle
                got = None
            if got is None or not got.is_dir():
                return folders / "missing"  # never made (the others are named by a sha256)
            folder = folders / sha256_tree(got)
            try:
                got.rename(folder)
            except OSError:  # the same files, put there by another reconciler
                if not folder.is_dir():
                    raise
        return folder

    def set_tags(self, model: str, version: int, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._call("set tag", self.client.set_model_version_tag, model, str(version), key, value)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """Add a file to a (finished) run's artifacts: decisions and reports kept with the version."""
        self._call(f"log {artifact_file}", self.client.log_text, run_id, text, artifact_file)

    def log_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        self._call(f"log {artifact_path}", self.client.log_artifacts, run_id, str(local_dir), artifact_path)

    def download(self, run_id: str, artifact_path: str, dst: Path) -> Path | None:
        """A run's artifact directory (or file) downloaded under dst; None when the run has none."""
        import mlflow

        listed = self._call(f"list {artifact_path}", self.client.list_artifacts, run_id, artifact_path)
        if not listed:
            return None
        return Path(
            self._call(
                f"download {artifact_path}",
                mlflow.artifacts.download_artifacts,
                run_id=run_id,
                artifact_path=artifact_path,
                dst_path=str(dst),
            )
        )

    def set_model_tags(self, model: str, tags: dict[str, str]) -> None:
        """Tags on the registered model itself (the monitor's drift and performance status)."""
        for key, value in tags.items():
            self._call(f"tag {model}", self.client.set_registered_model_tag, model, key, value)

    def delete_model_tag(self, model: str, key: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model_tag(model, key)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(getattr(exc, "error_code", "")):
                raise MlopsError(f"registry {self.uri}: untag {model}: {exc.message}") from None
        except OSError as exc:
            raise MlopsError(f"registry {self.uri}: untag {model}: {exc}") from None


def version_facts(version: Any) -> dict[str, Any]:
    """Registry facts about one version, for reports, policy input and evidence."""
    tags = dict(version.tags)
    lineage = names.lineage_of(tags)
    artifact = names.artifact_of(tags)
    return {
        "version": int(version.version),
        "run_id": version.run_id,
        "source": version.source,
        "aliases": list(getattr(version, "aliases", []) or []),
        "lineage": lineage,
        "metrics": names.metrics_of(tags),
        "artifact_sha256": artifact["sha256"],
        "signature": artifact["signature"],
    }


class VerifyFailed(MlopsError):
    """The artifact is not the one registered (or cannot be found): nothing is deployed."""

    exit_code = ExitCode.FAILED


@dataclass(frozen=True)
class Verified:
    """A model directory whose content hashed to the sha256 recorded at registration."""

    path: Path
    sha256: str
    signing: Path | None = None  # its signature and provenance (None: an unsigned version)
    signer: str = ""  # the trust policy's name for who signed it, once an environment admitted it
    signed_by: str = ""  # whom its bundle names (a key's fingerprint or an identity)


def stored_sha256(uri: str) -> str:
    """Download an artifact (a `models:/` or run URI) to a temporary place and hash it."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        return sha256_tree(Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)))
