"""Load and validate the repository's configuration: mlops.yaml, models, manifests.

Every file is checked against a JSON Schema shipped with this package, then the files
are checked against each other (names match directories, every model has a manifest in
every environment, ...).  Validation collects every problem before reporting; it never
changes a file.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from . import state, tasks, yamlio
from .errors import ExitCode, MlopsError

PROJECT_FILE = "mlops.yaml"
MODELS_DIR = "models"
ENVIRONMENTS_DIR = "environments"
# The pipeline trains one set of stages per section of its parameters' `models:` (dvc.yaml foreach).
PIPELINE_PARAMS = "pipelines/params.yaml"
# The names a model card (models/<model>/card.md, a Jinja template) is filled in with by `mlops evidence`.
CARD_NAMES = (
    "approvals",
    "decisions",
    "deployment",
    "drift",
    "environment",
    "fairness",
    "lineage",
    "metrics",
    "model",
    "performance",
    "thresholds",
    "version",
)
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_EXPECTED = "a DNS-1123 label: lower-case letters, digits and '-', 1-63 characters"


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    field: str
    problem: str
    expected: str = ""

    def __str__(self) -> str:
        where = f"{self.path}: {self.field}: " if self.field else f"{self.path}: "
        return where + self.problem + (f" (expected {self.expected})" if self.expected else "")


class InvalidConfig(MlopsError):
    exit_code = ExitCode.FAILED

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        more = f" (and {len(problems) - 1} more: run `mlops validate`)" if len(problems) > 1 else ""
        super().__init__(f"{self.problems[0]}{more}")


@dataclass
class Repo:
    """The validated configuration of one repository."""

    root: Path
    project: dict[str, Any]
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifests: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # (environment, model) -> the first problem of a deployment whose own files fail validation,
    # when loaded with isolate=True: that deployment is left alone, every other one carries on
    invalid: dict[tuple[str, str], str] = field(default_factory=dict)

    def require_unit(self, env: str, model: str) -> None:
        """One line when (env, model) is a deployment whose files fail validation."""
        if (env, model) in self.invalid:
            raise MlopsError(f"{self.invalid[(env, model)]} (fix it first: `mlops validate`)")

    @property
    def environments(self) -> list[str]:
        return [env["name"] for env in self.project["environments"]]

    def manifest_path(self, env: str, model: str) -> Path:
        return (
            self.root
            / ENVIRONMENTS_DIR
            / state.name("environment", env)
            / f"{state.name('model', model)}.yaml"
        )

    def model_path(self, model: str) -> Path:
        return self.root / MODELS_DIR / state.name("model", model) / "model.yaml"

    def require_model(self, model: str) -> dict[str, Any]:
        """The model's definition, or one line naming the models there are."""
        if model not in self.models:
            raise MlopsError(
                f"model {model!r}: not defined (expected one of {', '.join(sorted(self.models))})"
            )
        return self.models[model]

    def require_environment(self, env: str, option: str = "--env") -> str:
        if env not in self.environments:
            raise MlopsError(
                f"{option} {env!r}: not an environment (expected one of {', '.join(self.environments)})"
            )
        return env


def find_root(start: Path | None = None) -> Path:
    """The nearest directory at or above start that holds mlops.yaml."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / PROJECT_FILE).is_file():
            return candidate
    raise MlopsError(
        f"{here}: no {PROJECT_FILE} here or above (expected to run inside a generated repository)"
    )


@cache
def schema(name: str) -> dict[str, Any]:
    text = resources.files("mlops_gitops").joinpath("schemas", f"{name}.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(value: Any) -> str:
    kind = {dict: "a mapping", list: "a list", str: "string", bool: "boolean", type(None): "null"}
    text = json.dumps(value) if not isinstance(value, dict | list) else ""
    if len(text) > 40:
        text = text[:37] + "..."
    name = kind.get(type(value), type(value).__name__)
    return f"{name} {text}".strip()


def _expected(sub: dict[str, Any]) -> str:
    if "x-expected" in sub:
        return str(sub["x-expected"])
    if "enum" in sub:
        return "one of " + ", ".join(json.dumps(v) for v in sub["enum"])
    if "const" in sub:
        return json.dumps(sub["const"])
    names = {
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "object": "a mapping",
        "array": "a list",
        "null": "null",
    }
    if "type" in sub:
        return names.get(sub["type"], str(sub["type"]))
    if "$ref" in sub:
        return "a valid value"
    return ""


def _resolve(root_schema: dict[str, Any], sub: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in sub and "x-expected" not in sub:
        ref = sub["$ref"].removeprefix("#/")
        node: Any = root_schema
        for key in ref.split("/"):
            node = node[key]
        sub = node
    return sub


@cache
def _validators(name: str) -> tuple[Any, Any]:
    """(a compiled check, jsonschema's validator) for one schema, built once per process."""
    import jsonschema_rs

    root_schema = schema(name)
    return jsonschema_rs.validator_for(root_schema), jsonschema.Draft202012Validator(root_schema)


def schema_problems(data: Any, name: str, display: str) -> list[Problem]:
    """Every schema violation of one document, as Problems. A compiled validator (jsonschema-rs)
    says whether there is any; jsonschema, the reference, says which."""
    compiled, validator = _validators(name)
    if compiled.is_valid(data):
        return []
    root_schema = schema(name)
    out = []
    for err in validator.iter_errors(data):
        where = _field_path(err.absolute_path)
        sub = err.schema if isinstance(err.schema, dict) else {}
        if err.validator == "required":
            missing = re.findall(r"'([^']+)' is a required property", err.message)
            key = missing[0] if missing else "?"
            prop = _resolve(root_schema, sub.get("properties", {}).get(key, {}))
            out.append(
                Problem(
                    display, _field_path([*err.absolute_path, key]), "missing", _expected(prop) or "a value"
                )
            )
        elif err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(sub.get("properties", {})))
            allowed = ", ".join(sorted(sub.get("properties", {})))
            for key in extra:
                out.append(
                    Problem(
                        display, _field_path([*err.absolute_path, key]), "unknown key", f"one of: {allowed}"
                    )
                )
        elif err.validator in ("type", "enum", "const", "pattern", "oneOf", "contains"):
            out.append(
                Problem(
                    display, where, f"got {_describe(err.instance)}", _expected(_resolve(root_schema, sub))
                )
            )
        else:
            out.append(Problem(display, where, err.message, _expected(sub) if "x-expected" in sub else ""))
    return out


FAILED = object()  # what _load returns for a file it could not read (its problem is recorded)


def outside(root: Path, path: Path) -> bool:
    """True when `path` (a link, or a folder above it that is one) leads out of the repository."""
    return not path.resolve().is_relative_to(root.resolve())


def _outside_problem(root: Path, path: Path) -> Problem:
    return Problem(
        path.relative_to(root).as_posix(),
        "",
        "a link out of the repository",
        "a file in the repository (nothing it declares is followed outside it)",
    )


def _load(path: Path, root: Path, problems: list[Problem]) -> Any:
    """The file's data (None for an empty one); FAILED when it cannot be used (recorded)."""
    display = path.relative_to(root).as_posix()
    if outside(root, path):
        problems.append(_outside_problem(root, path))
        return FAILED
    try:
        return yamlio.load(path, display)
    except yamlio.YamlError as exc:
        problems.append(Problem(exc.source, exc.where, exc.problem, exc.expected))
        return FAILED


def _check_document(data: Any, kind: str, display: str, problems: list[Problem]) -> bool:
    if data is FAILED:
        return False
    if data is None:  # empty, or comments only: never read as "nothing wanted here"
        problems.append(Problem(display, "", "empty file (or comments only)", f"a {kind} document"))
        return False
    before = len(problems)
    problems.extend(schema_problems(data, kind, display))
    return len(problems) == before


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


PLACEHOLDER_OWNERS = "@acme/"  # the template's example organisation, in its default answers


def placeholder_owners(project: dict[str, Any]) -> list[Problem]:
    """Owners still naming the template's placeholder organisation: reported by `mlops validate`
    as warnings (they make no approval count) until the team names its own."""
    owners = project.get("owners") or {}
    found = []
    team = str(owners.get("team") or "")
    if team.startswith(PLACEHOLDER_OWNERS):
        found.append(
            Problem(PROJECT_FILE, "owners.team", f"{team} is the template's placeholder", "your team")
        )
    approvers = [str(a) for a in owners.get("production_approvers") or []]
    named = [a for a in approvers if a.startswith(PLACEHOLDER_OWNERS)]
    if named:
        found.append(
            Problem(
                PROJECT_FILE,
                "owners.production_approvers",
                f"{', '.join(named)}: the template's placeholder",
                "the teams that approve production, here and in .github/CODEOWNERS",
            )
        )
    return found


def collect(root: Path, deploying: bool = False) -> tuple[Repo | None, list[Problem], list[str]]:
    """Load and check every configuration file, one loader per kind of file.

    Returns what could be loaded (None without a valid mlops.yaml), every problem, and the
    files checked.  Callers that need a fully valid repository use load_repo. `deploying`: what
    the deployment verbs need, without the model cards and the pipeline's sections (evidence
    and training read those; `mlops validate` and the gate check them)."""
    problems: list[Problem] = []
    checked: list[str] = []
    project = _load_project(root, problems, checked)
    environments = [env["name"] for env in project["environments"]] if project is not None else None
    models = _load_models(root, problems, checked, deploying)
    manifests = _load_manifests(root, environments, problems, checked)
    models_dir = root / MODELS_DIR
    if models_dir.is_dir() and not deploying:
        problems.extend(_pipeline_problems(root, [p.name for p in models_dir.iterdir() if p.is_dir()]))
        checked.append(PIPELINE_PARAMS)
    if project is not None and environments is not None:
        problems.extend(_missing_manifests(root, models, environments))
        problems.extend(_model_store_problems(project, manifests))
        problems.extend(_deploy_problems(root, project))
    repo = Repo(root, project, models, manifests) if project is not None else None
    return repo, sorted(set(problems)), checked


def _load_project(root: Path, problems: list[Problem], checked: list[str]) -> dict[str, Any] | None:
    """mlops.yaml, checked against its schema and for what a schema cannot say; None if invalid."""
    project_path = root / PROJECT_FILE
    checked.append(PROJECT_FILE)
    loaded = _load(project_path, root, problems) if project_path.is_file() else FAILED
    if not project_path.is_file():
        problems.append(Problem(PROJECT_FILE, "", "missing", "the project configuration file"))
    if not (_check_document(loaded, "mlops", PROJECT_FILE, problems) and isinstance(loaded, dict)):
        return None
    problems.extend(_environment_problems(loaded))
    return loaded


def _environment_problems(loaded: dict[str, Any]) -> list[Problem]:
    """What a schema cannot say of mlops.yaml's environments: names once, protected ones strict,
    signers named in the trust policy, promotion only from an environment listed before."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, env in enumerate(loaded["environments"]):
        at = f"environments[{i}]"
        if env["name"] in seen:
            problems.append(
                Problem(PROJECT_FILE, f"{at}.name", f"duplicate {env['name']!r}", "each environment once")
            )
        if env.get("protected") and env.get("allow_dirty_lineage"):
            problems.append(
                Problem(
                    PROJECT_FILE,
                    f"{at}.allow_dirty_lineage",
                    "true in a protected environment",
                    "false or absent: a protected environment takes clean lineages only",
                )
            )
        if env.get("protected") and env.get("require_signature") is False:
            problems.append(
                Problem(
                    PROJECT_FILE,
                    f"{at}.require_signature",
                    "false in a protected environment",
                    "true or absent: a protected environment serves signed versions only",
                )
            )
        listed = {
            *((loaded.get("signing") or {}).get("keys") or {}),
            *((loaded.get("signing") or {}).get("identities") or {}),
        }
        for name in env.get("signers") or []:
            if name not in listed:
                problems.append(
                    Problem(
                        PROJECT_FILE,
                        f"{at}.signers",
                        f"{name!r} is not a signer",
                        "a name under signing.keys or signing.identities",
                    )
                )
        source = env.get("promote_from")
        if source is not None and source not in seen:
            problems.append(
                Problem(
                    PROJECT_FILE,
                    f"{at}.promote_from",
                    f"got {source!r}",
                    "an environment listed before this one",
                )
            )
        seen.add(env["name"])
    return problems


def _load_models(
    root: Path, problems: list[Problem], checked: list[str], deploying: bool
) -> dict[str, dict[str, Any]]:
    """models/<name>/model.yaml (and, unless deploying, card.md) of each model directory."""
    models: dict[str, dict[str, Any]] = {}
    models_dir = root / MODELS_DIR
    for model_dir in sorted(p for p in models_dir.iterdir() if p.is_dir()) if models_dir.is_dir() else []:
        display = f"{MODELS_DIR}/{model_dir.name}/model.yaml"
        if not DNS_1123_LABEL.match(model_dir.name):
            problems.append(
                Problem(f"{MODELS_DIR}/{model_dir.name}", "", "bad model directory name", LABEL_EXPECTED)
            )
            continue
        path = model_dir / "model.yaml"
        checked.append(display)
        if outside(root, model_dir):
            problems.append(_outside_problem(root, model_dir))
            continue
        if not path.is_file():
            problems.append(Problem(display, "", "missing", "a model definition for this model directory"))
            continue
        data = _load(path, root, problems)
        if _check_document(data, "model", display, problems):
            if data["name"] != model_dir.name:
                expected = f"{model_dir.name!r}, the directory name"
                problems.append(Problem(display, "name", f"got {data['name']!r}", expected))
            else:
                models[data["name"]] = data
        checked.append(f"{MODELS_DIR}/{model_dir.name}/card.md")
        if not deploying:
            problems.extend(_card_problems(root, model_dir.name))
    return models


def _load_manifests(
    root: Path, environments: list[str] | None, problems: list[Problem], checked: list[str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """environments/<env>/<model>.yaml: each valid manifest, by (environment, model)."""
    manifests: dict[tuple[str, str], dict[str, Any]] = {}
    env_root = root / ENVIRONMENTS_DIR
    for env_dir in sorted(p for p in env_root.iterdir() if p.is_dir()) if env_root.is_dir() else []:
        if environments is not None and env_dir.name not in environments:
            expected = f"one of {', '.join(environments)} (listed in {PROJECT_FILE})"
            problems.append(
                Problem(f"{ENVIRONMENTS_DIR}/{env_dir.name}", "", "unknown environment", expected)
            )
            continue
        if outside(root, env_dir):
            problems.append(_outside_problem(root, env_dir))
            continue
        files = _yaml_files(env_dir)
        stems = [p.stem for p in files]
        for stem in sorted({s for s in stems if stems.count(s) > 1}):
            problems.append(
                Problem(
                    f"{ENVIRONMENTS_DIR}/{env_dir.name}/{stem}.yaml",
                    "",
                    f"two files for model {stem!r} ({stem}.yaml and {stem}.yml)",
                    "one manifest per model: remove one",
                )
            )
        for path in files:
            display = path.relative_to(root).as_posix()
            checked.append(display)
            if stems.count(path.stem) > 1:
                continue
            data = _load(path, root, problems)
            if not _check_document(data, "manifest", display, problems):
                continue
            found = _manifest_problems(root, display, path, data)
            problems.extend(found)
            if not found:
                manifests[(env_dir.name, data["model"])] = data
    return manifests


def _manifest_problems(root: Path, display: str, path: Path, data: dict[str, Any]) -> list[Problem]:
    """What a schema-valid manifest can still get wrong: its place, its model, its routing."""
    found = []
    if data["environment"] != path.parent.name:
        expected = f"{path.parent.name!r}, the directory name"
        found.append(Problem(display, "environment", f"got {data['environment']!r}", expected))
    if data["model"] != path.stem:
        found.append(Problem(display, "model", f"got {data['model']!r}", f"{path.stem!r}, the file name"))
    elif not (root / MODELS_DIR / data["model"] / "model.yaml").is_file():
        expected = f"a model defined in {MODELS_DIR}/{data['model']}/model.yaml"
        found.append(Problem(display, "model", f"no model {data['model']!r}", expected))
    else:
        found.extend(_check_fits_task(root, display, data))
    found.extend(_routing_problems(display, data))
    traffic = data.get("traffic")
    if traffic:
        total = sum(entry["percent"] for entry in traffic)
        if total != 100:
            found.append(Problem(display, "traffic", f"percentages sum to {total}", "100"))
        if data["version"] not in [entry["version"] for entry in traffic]:
            expected = f"version {data['version']} among the traffic entries"
            found.append(Problem(display, "traffic", "does not name the manifest's version", expected))
    return found


def _check_fits_task(root: Path, display: str, data: dict[str, Any]) -> list[Problem]:
    """A rollout's prediction checks fit the model's task (a regressor has no classes; a
    multiclass classifier has no one score to take a PSI of)."""
    checks = (data.get("rollout") or {}).get("checks") or {}
    if not checks:
        return []
    try:
        definition = yamlio.load(root / MODELS_DIR / data["model"] / "model.yaml") or {}
        task = tasks.Task(definition.get("task", tasks.Task.BINARY.value))
    except (MlopsError, ValueError, AttributeError):
        return []  # the model's own file reports what is wrong with it
    allowed = tasks.PREDICTION_CHECKS[task]
    return [
        Problem(
            display,
            f"rollout.checks.{name}",
            f"set for a {task.value} model",
            f"the prediction checks of its task: {', '.join(allowed)}",
        )
        for name in sorted(checks)
        if name in tasks.ALL_PREDICTION_CHECKS and name not in allowed
    ]


def _missing_manifests(root: Path, models: dict[str, Any], environments: list[str]) -> list[Problem]:
    return [
        Problem(
            f"{ENVIRONMENTS_DIR}/{env}/{name}.yaml",
            "",
            "missing",
            f"a manifest for model {name!r} in every environment",
        )
        for name in models
        for env in environments
        if not (root / ENVIRONMENTS_DIR / env / f"{name}.yaml").is_file()
    ]


def _routing_problems(display: str, data: dict[str, Any]) -> list[Problem]:
    """Each version once in a split; a shadow is another version than the one serving."""
    found = []
    versions = [entry["version"] for entry in data.get("traffic") or []]
    repeated = sorted({v for v in versions if versions.count(v) > 1})
    if repeated:
        found.append(
            Problem(display, "traffic", f"version {repeated[0]} listed twice", "each version once in a split")
        )
    shadow = (data.get("shadow") or {}).get("version")
    if shadow is not None and shadow == data.get("version"):
        found.append(
            Problem(
                display,
                "shadow.version",
                f"{shadow}, the version serving",
                "another version than `version` (a shadow mirrors traffic to a candidate)",
            )
        )
    canary = data.get("canary")
    if canary:
        if data.get("traffic"):
            found.append(Problem(display, "canary", "set with traffic", "one of them: both name the split"))
        if data.get("version") is None:
            found.append(
                Problem(display, "canary", "set while version is null", "a stable `version` beside it")
            )
        elif canary["version"] == data.get("version"):
            found.append(
                Problem(
                    display, "canary.version", f"{canary['version']}, the stable version", "another version"
                )
            )
    found.extend(_rollout_problems(display, data))
    return found


def _rollout_problems(display: str, data: dict[str, Any]) -> list[Problem]:
    """A rollout's weights rise and stay under 100; it steers the traffic itself (no `traffic`)."""
    rollout = data.get("rollout")
    if not rollout:
        return []
    found = []
    for key in ("traffic", "canary"):
        if data.get(key):
            found.append(
                Problem(
                    display, "rollout", f"set with {key}", "one of them: a rollout sets the canary's weights"
                )
            )
    if "steps" in rollout and ("step_weight" in rollout or "max_weight" in rollout):
        found.append(Problem(display, "rollout", "steps and step_weight both set", "one of the two"))
    elif "steps" not in rollout and not ("step_weight" in rollout and "max_weight" in rollout):
        found.append(Problem(display, "rollout", "no weights", "steps, or step_weight and max_weight"))
    steps = rollout.get("steps") or []
    if any(b <= a for a, b in itertools.pairwise(steps)):
        found.append(Problem(display, "rollout.steps", str(steps), "rising weights, e.g. [10, 25, 50]"))
    if rollout.get("step_weight", 0) > rollout.get("max_weight", 99):
        found.append(Problem(display, "rollout.max_weight", "below step_weight", "at least step_weight"))
    return found


LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|::1|localhost)$")


def _deploy_problems(root: Path, project: dict[str, Any]) -> list[Problem]:
    """Where deployments are written and who can reach them: inside the repository, on loopback
    unless a team says otherwise."""
    deploy = project.get("deploy") or {}
    local, kserve = deploy.get("local") or {}, deploy.get("kserve") or {}
    found = []
    host = str(local.get("host", "127.0.0.1"))
    if not LOOPBACK.match(host) and not local.get("allow_remote"):
        found.append(
            Problem(
                PROJECT_FILE,
                "deploy.local.host",
                f"{host} (reachable from other machines)",
                "a loopback address, or deploy.local.allow_remote: true to serve the network on purpose",
            )
        )
    out = str(kserve.get("output_dir", "deploy/kserve"))
    if Path(out).is_absolute() or outside(root, root / out):
        found.append(
            Problem(
                PROJECT_FILE,
                "deploy.kserve.output_dir",
                f"{out} is outside the repository",
                "a folder inside it",
            )
        )
    return found


def _model_store_problems(project: dict[str, Any], manifests: dict[tuple[str, str], Any]) -> list[Problem]:
    """A version promoted to KServe needs a model store KServe can fetch it from."""
    kserve = (project.get("deploy") or {}).get("kserve") or {}
    promoted = sorted(
        f"{ENVIRONMENTS_DIR}/{env}/{model}.yaml"
        for (env, model), data in manifests.items()
        if (data.get("target") or {}).get("kind") == "kserve" and data.get("version") is not None
    )
    if not promoted:
        return []
    store = str(kserve.get("model_store") or "")
    if not store:
        return [
            Problem(
                PROJECT_FILE,
                "deploy.kserve.model_store",
                f"missing ({promoted[0]} deploys to KServe)",
                "where KServe fetches models: s3://bucket/prefix, gs://bucket/prefix, "
                "pvc://claim/prefix or a directory",
            )
        ]
    if store.startswith("pvc://") and not kserve.get("model_store_mount"):
        return [
            Problem(
                PROJECT_FILE,
                "deploy.kserve.model_store_mount",
                "missing",
                f"where the claim of {store} is mounted on the reconciler's machine",
            )
        ]
    return []


def _card_problems(root: Path, model: str) -> list[Problem]:
    """The model card must be a Jinja template that names only what `mlops evidence` fills in."""
    import jinja2
    from jinja2 import meta

    path = root / MODELS_DIR / model / "card.md"
    display = f"{MODELS_DIR}/{model}/card.md"
    if path.exists() and outside(root, path):
        return [_outside_problem(root, path)]
    if not path.is_file():
        return [Problem(display, "", "missing", "the model card template (`mlops model add` writes one)")]
    try:
        parsed = jinja2.Environment().parse(path.read_text(encoding="utf-8"))
    except jinja2.TemplateSyntaxError as exc:
        return [Problem(display, f"line {exc.lineno}", exc.message or "not a template", "a Jinja template")]
    except UnicodeDecodeError:
        return [Problem(display, "", "not UTF-8 text", "a UTF-8 Jinja template")]
    unknown = sorted(meta.find_undeclared_variables(parsed) - set(CARD_NAMES))
    return [
        Problem(
            display, name, "unknown name", f"one of {', '.join(CARD_NAMES)} (what `mlops evidence` fills in)"
        )
        for name in unknown
    ]


def _pipeline_problems(root: Path, defined: list[str]) -> list[Problem]:
    """Every model of models/ has a section in the pipeline's parameters, and every section a model:
    a model the pipeline does not know is never trained, one without a definition never registered."""
    path = root / PIPELINE_PARAMS
    if not path.is_file():
        return [
            Problem(PIPELINE_PARAMS, "", "missing", "the pipeline's parameters, a models: section per model")
        ]
    if outside(root, path):
        return [_outside_problem(root, path)]
    try:
        data = yamlio.load(path, PIPELINE_PARAMS)
    except yamlio.YamlError as exc:
        return [Problem(exc.source, exc.where, exc.problem, exc.expected)]
    sections = data.get("models") if isinstance(data, dict) else None
    if not isinstance(sections, dict):
        return [
            Problem(
                PIPELINE_PARAMS, "models", f"got {_describe(sections)}", "a mapping: one section per model"
            )
        ]
    out = []
    for name in sorted(set(defined) - set(sections)):
        out.append(
            Problem(
                PIPELINE_PARAMS,
                f"models.{name}",
                "missing: the pipeline does not train this model",
                f"a section for it: `mlops model add {name}` writes one, or copy another model's",
            )
        )
    for name in sorted(set(sections) - set(defined)):
        out.append(
            Problem(
                PIPELINE_PARAMS,
                f"models.{name}",
                "no model definition",
                f"models/{name}/model.yaml (`mlops model add {name}`), or the section removed",
            )
        )
    for name in sorted(set(sections) & set(defined)):
        if not isinstance(sections[name], dict):
            out.append(
                Problem(PIPELINE_PARAMS, f"models.{name}", f"got {_describe(sections[name])}", "a mapping")
            )
    return out


UNIT_FILE = re.compile(rf"^{ENVIRONMENTS_DIR}/([^/]+)/([^/]+)\.ya?ml$")
MODEL_FILE = re.compile(rf"^{MODELS_DIR}/([^/]+)(/.*)?$")


def owner_of(problem: Problem) -> tuple[str, str] | None:
    """Whose problem it is: ("unit", "<env>/<model>"), ("model", name), ("pipeline", "") for the
    training side alone, or None for the repository as a whole (mlops.yaml and the rest)."""
    unit = UNIT_FILE.match(problem.path)
    if unit and DNS_1123_LABEL.match(unit[1]) and DNS_1123_LABEL.match(unit[2]):
        return "unit", f"{unit[1]}/{unit[2]}"
    owned = MODEL_FILE.match(problem.path)
    if owned and DNS_1123_LABEL.match(owned[1]):
        return "model", owned[1]
    if problem.path == PIPELINE_PARAMS:
        name = problem.field.split(".", 1)[1] if problem.field.startswith("models.") else ""
        return ("model", name) if DNS_1123_LABEL.match(name) else ("pipeline", "")
    return None


def load_repo(root: Path | None = None, isolate: bool = False) -> Repo:
    """The repository's configuration, or InvalidConfig naming the first problem.

    With `isolate` (what the deployment verbs load: plan, reconcile, status, rollback), a problem
    in one deployment's own files (its manifest, its model's definition, card or pipeline
    section) marks that (environment, model) invalid in `Repo.invalid` and leaves the rest
    loaded, as Argo CD's InvalidSpec does for one application; a problem of the repository as a
    whole (mlops.yaml, an unknown environment folder) still stops everything. The model cards and
    the pipeline's sections are not read then: they are evidence's and training's, not a
    deployment's (`mlops validate` and the gate still check them)."""
    repo, problems, _ = collect(root or find_root(), deploying=isolate)
    whole = [p for p in problems if owner_of(p) is None] if isolate else problems
    if repo is None or whole:
        raise InvalidConfig(whole or problems)
    for problem in problems:
        kind, name = owner_of(problem) or ("", "")
        if kind == "unit":
            env, model = name.split("/")
            units = [(env, model)] if env in repo.environments else []
        elif kind == "model":
            units = [(env, name) for env in repo.environments]
            repo.models.pop(name, None)
        else:
            continue  # the pipeline's own settings: training's concern, not a deployment's
        for unit in units:
            repo.invalid.setdefault(unit, str(problem))
    for unit in repo.invalid:
        repo.manifests.pop(unit, None)
    return repo
