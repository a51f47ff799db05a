"""`mlops model add`: scaffold a model, its pipeline parameters and its manifest in every environment.

The files come from `templates/model/*.j2`, the same templates cookiecutter renders for
the first model, so a scaffolded model looks exactly like a generated one: `model.yaml` and
`card.md` under `models/<name>/`, a manifest per environment, and a section in the pipeline's
parameters (`pipelines/params.yaml`), which is what makes `make train` train it.

`--like OTHER` starts from OTHER's settings instead of the template's: its owner, task, risk
tier, thresholds, drift and fairness settings, its pipeline parameters and each manifest's
`target:`. A model's words (description, intended use, out of scope, limitations) are never
copied: they start as TODO placeholders, which the promotion policy keeps out of production.

`--data` (a core.tables.Table) wires the model to the team's own table instead of the example's:
its task, target and id columns, the task's metrics and thresholds (core.tasks.DEFAULTS), no
fairness check until the team names its sensitive features, and `data.source` in the pipeline's
parameters pointing at the table under pipelines/sources/.

Everything is rendered and validated in memory first; files are then written atomically, and
a re-run after an interruption finishes the job instead of failing on what is there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from . import yamlio
from .config import (
    DNS_1123_LABEL,
    ENVIRONMENTS_DIR,
    LABEL_EXPECTED,
    MODELS_DIR,
    PIPELINE_PARAMS,
    InvalidConfig,
    Repo,
    collect,
    schema_problems,
)
from .errors import MlopsError
from .tables import Table
from .tasks import DEFAULTS

TEMPLATES_DIR = "templates"
MAX_PURPOSE = 200
# What `--like` copies from the other model's definition (its words stay behind).
LIKE_SETTINGS = ("owner", "task", "risk_tier", "target_column", "metrics", "drift", "fairness")
PARAMS_HEADER = "# Parameters of the pipeline (dvc.yaml): one section per model it trains.\nmodels:\n"


@dataclass(frozen=True)
class PlannedFile:
    path: Path
    text: str
    exists: bool
    section: bool = False  # a section added to a shared file (the pipeline's parameters)


def _environment(root: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root / TEMPLATES_DIR)),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def _answers(repo: Repo, name: str, purpose: str) -> dict[str, Any]:
    """The cookiecutter-shaped context, taken from the live mlops.yaml rather than old answers."""
    project = repo.project
    return {
        "model_name": name,
        "model_purpose": purpose,
        "owning_team": project["owners"]["team"],
        "deployment_target": project["deploy"]["target"],
    }


def check_name(name: str) -> None:
    if not DNS_1123_LABEL.match(name):
        raise MlopsError(f"model name {name!r}: not allowed (expected {LABEL_EXPECTED})")


def check_purpose(purpose: str) -> None:
    if "\n" in purpose or "\r" in purpose or len(purpose) > MAX_PURPOSE:
        raise MlopsError(f"--purpose: {len(purpose)} characters (expected one line of at most {MAX_PURPOSE})")


def _like_model(rendered: str, other: str) -> str:
    for key in LIKE_SETTINGS:
        rendered = yamlio.replace_entry(rendered, key, other)
    return rendered


SOURCES_DIR = "sources"  # under pipelines/: the teams' tables, tracked by DVC


def source_of(name: str, suffix: str) -> str:
    """A model's table, relative to pipelines/ (DVC's wdir)."""
    return f"{SOURCES_DIR}/{name}{suffix.lower()}"


def _own_model(rendered: str, table: Table) -> str:
    """The rendered definition, set for the team's table: its task, target, ids, the task's
    metrics and live metric, and the fairness check offered, not guessed."""
    defaults = DEFAULTS[table.task]
    thresholds = "".join(
        f"    {metric}: " + "{" + ", ".join(f"{k}: {v}" for k, v in bound.items()) + "}\n"
        for metric, bound in defaults.thresholds.items()
    )
    ids = ", ".join(table.ids)
    own = (
        f"task: {table.task.value}\n"
        f"target_column: {table.target}\n"
        f"id_columns: [{ids}]\n"
        "metrics:\n"
        f"  primary: {defaults.primary}\n"
        "  # The candidate must reach every threshold on the evaluation data. Starting values for a\n"
        f"  # {table.task.value} model: set what the decision needs.\n"
        "  thresholds:\n"
        f"{thresholds}"
        "  # Largest tolerated drop of the primary metric against the version in production.\n"
        "  max_regression: 0.01\n"
    )
    text = rendered
    for key in ("task", "target_column", "id_columns", "metrics"):
        text = yamlio.replace_entry(text, key, own)
    text = re.sub(r"(live_performance: \{metric: )[a-z_0-9]+", rf"\g<1>{defaults.live_metric}", text, count=1)
    offered = ", ".join(table.sensitive_candidates) or "none found: name any column"
    fairness = (
        "# Sensitive features to check (a binary classifier's): none named yet. Columns that may be one:\n"
        f"# {offered}. For example:\n"
        "# fairness:\n"
        "#   sensitive_features:\n"
        "#     <column>: {}               # a number: {bins: [lower edges]}\n"
        "#   max_demographic_parity_difference: 0.2\n"
        "#   max_equalized_odds_difference: 0.2\n"
    )
    text = yamlio.replace_entry(text, "fairness", None)
    return text.rstrip("\n") + "\n" + fairness


def _own_params(section: str, name: str, source: str) -> str:
    """The template's parameter section with its data block pointing at the team's table."""
    data = (
        "  data:\n"
        f"    # {name}'s own table, tracked by DVC ({source}.dvc): `dvc push` sends it to\n"
        "    # the team's remote, `dvc pull` fetches it on another machine.\n"
        f"    source: {source}\n"
    )
    own, count = re.subn(r"^  data:\n(?:    .*\n|\s*\n)*", data, section, count=1, flags=re.M)
    if count != 1:
        raise MlopsError(f"{TEMPLATES_DIR}/model/params.yaml.j2: no `data:` block to point at {source}")
    return own


def _like_manifest(rendered: str, other: str | None) -> str:
    return yamlio.replace_entry(rendered, "target", other) if other is not None else rendered


def _params_text(current: str | None, name: str, section: str) -> str:
    """The pipeline's parameters with `section` (an entry `name:` at indentation 0) added at the end
    of `models:`; the rest of the file byte for byte."""
    text = current if current is not None else PARAMS_HEADER
    indented = "".join(f"  {line}" if line.strip() else line for line in section.splitlines(keepends=True))
    if not indented.endswith("\n"):
        indented += "\n"
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    where = yamlio.entries("".join(lines)).get("models")
    if where is None:
        raise MlopsError(
            f"{PIPELINE_PARAMS}: no top-level `models:` mapping (expected one section per model)"
        )
    start, end = where
    if re.match(r"^models:\s*\{\s*\}\s*(#.*)?$", lines[start]):
        lines[start] = "models:\n"  # `models: {}` becomes a block
    return "".join([*lines[:end], indented, *lines[end:]])


def _section_of(params_text: str, model: str) -> str | None:
    """The text of `model`'s section under `models:` (indentation removed), comments within kept."""
    where = yamlio.entries(params_text).get("models")
    if where is None:
        return None
    lines = params_text.splitlines(keepends=True)
    body = "".join(lines[where[0] + 1 : where[1]])
    found = yamlio.entries(body, indent=2).get(model)
    if found is None:
        return None
    return "".join(
        line[2:] if line.startswith("  ") else line for line in body.splitlines(True)[slice(*found)]
    )


def _render(env: jinja2.Environment, template: str, context: dict[str, Any]) -> str:
    try:
        return env.get_template(template).render(context)
    except jinja2.TemplateError as exc:
        raise MlopsError(f"{TEMPLATES_DIR}/{template}: cannot render: {exc}") from None


def plan_model(
    repo: Repo, name: str, like: str | None = None, purpose: str = "", table: Table | None = None
) -> list[PlannedFile]:
    check_name(name)
    check_purpose(purpose)
    if like is not None and table is not None:
        raise MlopsError(
            "--like and --data: one or the other (expected another model's settings, or a table)"
        )
    if like is not None:
        repo.require_model(like)
        if like == name:
            raise MlopsError(f"--like {like!r}: the model itself (expected another model)")
    env = _environment(repo.root)
    context = {"cookiecutter": _answers(repo, name, purpose)}
    model_text = _render(env, "model/model.yaml.j2", context)
    if like is not None:
        model_text = _like_model(model_text, repo.model_path(like).read_text(encoding="utf-8"))
    if table is not None:
        model_text = _own_model(model_text, table)
    files: list[tuple[Path, str, str]] = [(repo.model_path(name), model_text, "model")]
    files.append(
        (repo.model_path(name).parent / "card.md", _render(env, "model/card.md.j2", context), "card")
    )
    for environment in repo.environments:
        text = _render(env, "model/manifest.yaml.j2", {**context, "environment": environment})
        if like is not None:
            theirs = repo.manifest_path(environment, like)
            text = _like_manifest(text, theirs.read_text(encoding="utf-8") if theirs.is_file() else None)
        files.append((repo.manifest_path(environment, name), text, "manifest"))
    planned = []
    for path, text, kind in files:
        display = path.relative_to(repo.root).as_posix()
        problems = [] if kind == "card" else schema_problems(yamlio.loads(text, display), kind, display)
        if problems:
            raise MlopsError(f"{TEMPLATES_DIR}/model renders an invalid file: {problems[0]}")
        exists = path.is_file()
        if exists and path.read_text(encoding="utf-8") != text:
            raise MlopsError(
                f"{display}: already exists with other content (expected a new model name; "
                f"models: {', '.join(sorted(repo.models)) or 'none'})"
            )
        planned.append(PlannedFile(path, text, exists))
    source = source_of(name, table.path.suffix) if table is not None else None
    planned.append(_plan_params(repo, env, context, name, like, source))
    if all(p.exists for p in planned) and name in repo.models:
        raise MlopsError(f"{MODELS_DIR}/{name}: model {name!r} already exists (expected a new model name)")
    return planned


def _plan_params(
    repo: Repo,
    env: jinja2.Environment,
    context: dict[str, Any],
    name: str,
    like: str | None,
    source: str | None = None,
) -> PlannedFile:
    """The pipeline's parameters with a section for `name`: the template's, or `like`'s copied."""
    path = repo.root / PIPELINE_PARAMS
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    data = yamlio.loads(current, PIPELINE_PARAMS) if current is not None else None
    sections = (data or {}).get("models") if isinstance(data, dict) else None
    if isinstance(sections, dict) and name in sections:
        return PlannedFile(path, current or "", True)  # already there (a re-run, or the team's own)
    if like is not None:
        section = _section_of(current or "", like)
        if section is None:
            raise MlopsError(
                f"{PIPELINE_PARAMS}: models.{like}: no section to copy for --like (expected one per model)"
            )
        section = re.sub(rf"^{re.escape(like)}:", f"{name}:", section, count=1)
        wanted = (sections or {}).get(like)
    else:
        section = _render(env, "model/params.yaml.j2", context)
        if source is not None:
            section = _own_params(section, name, source)
        wanted = (yamlio.loads(section, f"{TEMPLATES_DIR}/model/params.yaml.j2") or {}).get(name)
    text = _params_text(current, name, section)
    written = yamlio.loads(text, PIPELINE_PARAMS)
    if not isinstance(written, dict) or (written.get("models") or {}).get(name) != wanted:
        raise MlopsError(
            f"{PIPELINE_PARAMS}: cannot add a section for {name!r} here "
            "(expected `models:` as a block mapping of sections; add it by hand)"
        )
    return PlannedFile(path, text, False, section=True)


def add_model(
    repo: Repo, name: str, like: str | None = None, purpose: str = "", table: Table | None = None
) -> list[PlannedFile]:
    """Write the planned files that are not there yet; returns the plan."""
    planned = plan_model(repo, name, like, purpose, table)
    for item in planned:
        if not item.exists:
            yamlio.write_atomic(item.path, item.text)
    return planned


def load_for_add(root: Path, name: str) -> Repo:
    """The repository, valid except perhaps for the half-written files of this same model.

    An interrupted `mlops model add NAME` leaves some of NAME's files missing (its section of
    the pipeline's parameters among them); re-running it must finish the job, so exactly those
    "missing" problems are tolerated here.
    """
    check_name(name)
    repo, problems, _ = collect(root)
    ours = {f"{MODELS_DIR}/{name}/model.yaml", f"{MODELS_DIR}/{name}/card.md"} | {
        f"{ENVIRONMENTS_DIR}/{env}/{name}.yaml" for env in (repo.environments if repo else [])
    }

    def tolerated(p: Any) -> bool:
        if p.path in ours and p.problem == "missing":
            return True
        return (
            p.path == PIPELINE_PARAMS
            and p.field in ("", f"models.{name}")
            and p.problem.startswith("missing")
        )

    blocking = [p for p in problems if not tolerated(p)]
    if repo is None or blocking:
        raise InvalidConfig(blocking or problems)
    return repo
