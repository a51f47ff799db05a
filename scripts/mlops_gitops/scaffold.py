"""`mlops model add`: scaffold a model definition and its manifest in every environment.

The files come from `templates/model/*.j2`, the same templates cookiecutter renders for
the first model, so a scaffolded model looks exactly like a generated one.  Everything
is rendered and validated in memory first; files are then written atomically, and a
re-run after an interruption finishes the job instead of failing on what is there.
"""

from __future__ import annotations

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
    InvalidConfig,
    Repo,
    collect,
    schema_problems,
)
from .errors import MlopsError

TEMPLATES_DIR = "templates"


@dataclass(frozen=True)
class PlannedFile:
    path: Path
    text: str
    exists: bool


def _environment(root: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root / TEMPLATES_DIR)),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def _answers(repo: Repo, name: str) -> dict[str, Any]:
    """The cookiecutter-shaped context, taken from the live mlops.yaml rather than old answers."""
    project = repo.project
    return {
        "model_name": name,
        "owning_team": project["owners"]["team"],
        "deployment_target": project["deploy"]["target"],
    }


def check_name(name: str) -> None:
    if not DNS_1123_LABEL.match(name):
        raise MlopsError(f"model name {name!r}: not allowed (expected {LABEL_EXPECTED})")


def plan_model(repo: Repo, name: str) -> list[PlannedFile]:
    check_name(name)
    env = _environment(repo.root)
    context = {"cookiecutter": _answers(repo, name)}
    try:
        files = [(repo.model_path(name), env.get_template("model/model.yaml.j2").render(context), "model")]
        card = env.get_template("model/card.md.j2").render(context)
        files.append((repo.model_path(name).parent / "card.md", card, "card"))
        manifest = env.get_template("model/manifest.yaml.j2")
        for environment in repo.environments:
            text = manifest.render({**context, "environment": environment})
            files.append((repo.manifest_path(environment, name), text, "manifest"))
    except jinja2.TemplateError as exc:
        raise MlopsError(f"{TEMPLATES_DIR}/model: cannot render: {exc}") from None
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
    if all(p.exists for p in planned) and name in repo.models:
        raise MlopsError(f"{MODELS_DIR}/{name}: model {name!r} already exists (expected a new model name)")
    return planned


def add_model(repo: Repo, name: str) -> list[PlannedFile]:
    """Write the planned files that are not there yet; returns the plan."""
    planned = plan_model(repo, name)
    for item in planned:
        if not item.exists:
            yamlio.write_atomic(item.path, item.text)
    return planned


def load_for_add(root: Path, name: str) -> Repo:
    """The repository, valid except perhaps for the half-written files of this same model.

    An interrupted `mlops model add NAME` leaves some of NAME's files missing; re-running
    it must finish the job, so exactly those "missing" problems are tolerated here.
    """
    check_name(name)
    repo, problems, _ = collect(root)
    ours = {f"{MODELS_DIR}/{name}/model.yaml", f"{MODELS_DIR}/{name}/card.md"} | {
        f"{ENVIRONMENTS_DIR}/{env}/{name}.yaml" for env in (repo.environments if repo else [])
    }
    blocking = [p for p in problems if not (p.path in ours and p.problem == "missing")]
    if repo is None or blocking:
        raise InvalidConfig(blocking or problems)
    return repo
