"""Generating projects: the golden rendering, an answer matrix, bad answers, URLs, cruft."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT, base_env, instance_files, run_mlops
from .conftest import BIN, TEMPLATE_ONLY, bake, baked, generated_files, template_snapshot

# A bounded matrix: every answer takes a non-default value in at least one case, and the
# answers that shape files (model name, target, labels, approvers) vary together.
MATRIX = {
    "defaults": {},
    "kserve-fraud": {
        "project_name": "Card Fraud Signals",
        "model_name": "fraud-detector",
        "deployment_target": "kserve",
        "python_version": "3.12",
        "production_approvers": "@bank/model-risk,@bank/cro, @alice",
        "gpu_runner_labels": "self-hosted, linux, x64, gpu-a100",
    },
    "http-registry": {
        "project_name": "Readmission Risk",
        "project_slug": "readmit",
        "description": 'Predicts 30-day readmission; "quoted" and \\back-slashed text, O\'Brien.',
        "model_name": "readmission",
        "model_purpose": "Call patients at risk of readmission within 30 days: O'Brien's \"nurse line\"",
        "owning_team": "@health-ml",
        "mlflow_tracking_uri": "http://127.0.0.1:5000",
    },
}
JINJA_LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|\{#")


def expected_files(slug_answers: dict[str, str]) -> list[str]:
    """What a project must hold: this repository's instance files, the model renamed."""
    model = slug_answers.get("model_name", "churn")
    return sorted(
        re.sub(
            r"^(models/)churn(/)|^(environments/[^/]+/)churn(\.yaml)$",
            lambda m: f"{m.group(1) or m.group(3)}{model}{m.group(2) or m.group(4)}",
            f,
        )
        for f in instance_files()
    )


def test_golden_default_rendering_is_this_repository(tmp_path: Path) -> None:
    """Rendering with the default answers gives this repository's instance files, byte for byte."""
    project = baked(ROOT, tmp_path)
    assert project.name == "mlops-gitops-template"
    assert generated_files(project) == instance_files()
    different = [f for f in instance_files() if (project / f).read_bytes() != (ROOT / f).read_bytes()]
    assert different == []


def test_the_template_s_readme_opens_with_making_your_own_and_lists_every_question(tmp_path: Path) -> None:
    """The template's own README (its default rendering) says how to make a team's repository
    and what the generator asks, question for question; a team's README does not."""
    readme = (ROOT / "README.md").read_text()
    assert readme.index("## Make your own repository") < readme.index("## Your first model, step by step")
    table = readme.split("<!-- questions:begin -->", 1)[1].split("<!-- questions:end -->", 1)[0]
    asked = re.findall(r"^\| `(\w+)` \|", table, flags=re.M)
    questions = [k for k in json.loads((ROOT / "cookiecutter.json").read_text()) if not k.startswith("_")]
    assert asked == questions and len(questions) == 11
    team = baked(ROOT, tmp_path, {"project_name": "Tidewater Parcel Returns"})
    assert "## Make your own repository" not in (team / "README.md").read_text()


def test_template_only_files_are_listed_in_one_place() -> None:
    for entry in TEMPLATE_ONLY:
        assert (ROOT / entry).exists(), f"_template_only names {entry}, which does not exist"
    for path in (
        "cookiecutter.json",
        "hooks/post_gen_project.py",
        "tests/template/test_generation.py",
        ".ci/run",
        ".github/workflows/template.yml",
        "local_extensions.py",
    ):
        assert path not in instance_files()


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_generation_over_the_answer_matrix(tmp_path: Path, case: str) -> None:
    answers = MATRIX[case]
    project = baked(ROOT, tmp_path, answers)
    files = generated_files(project)
    assert files == expected_files(answers)
    for rel in files:
        if rel.endswith(".j2"):
            continue  # the scaffold templates of `mlops model add` are templates by design
        text = (project / rel).read_text(encoding="utf-8")
        if rel.startswith("models/") and rel.endswith("/card.md"):
            # the model card is a Jinja template by design (`mlops evidence` fills it in);
            # cookiecutter must have rendered its own part away
            assert "cookiecutter" not in text and text.lstrip().startswith("{#- The model card"), rel
            continue
        assert not JINJA_LEFTOVER.search(text), f"{rel}: un-rendered Jinja"
    # the generated repository validates, and keeps its answers
    assert run_mlops("validate", cwd=project).returncode == 0
    kept = json.loads((project / ".cookiecutter.json").read_text())
    assert {k: kept[k] for k in answers} == answers
    config = yaml.safe_load((project / "mlops.yaml").read_text())
    assert config["project"]["description"] == kept["description"]
    assert config["deploy"]["target"] == kept["deployment_target"]
    assert config["runners"]["gpu"] == [s.strip() for s in kept["gpu_runner_labels"].split(",")]
    approvers = [s.strip() for s in kept["production_approvers"].split(",")]
    assert config["owners"]["production_approvers"] == approvers
    codeowners = (project / ".github/CODEOWNERS").read_text()
    assert f"/environments/production/ {' '.join(approvers)}\n" in codeowners
    definition = yaml.safe_load((project / f"models/{kept['model_name']}/model.yaml").read_text())
    assert definition["description"] == (
        kept["model_purpose"] or f"TODO: the decision the scores of {kept['model_name']} serve, in one line"
    )
    assert all(text.startswith("TODO: ") for text in definition["card"].values())
    pyproject = (project / "pyproject.toml").read_text()
    assert f'name = "{kept["project_slug"]}"' in pyproject
    assert json.dumps(kept["description"]) in pyproject
    # a git repository with one clean commit
    log = subprocess.run(["git", "log", "--oneline"], cwd=project, capture_output=True, text=True, check=True)
    assert len(log.stdout.splitlines()) == 1
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True)
    assert status.stdout == ""


BAD_ANSWERS = {
    "model_purpose": ("two\nlines", "cookiecutter answer model_purpose='two\\nlines': expected one line"),
    "model_name": ("../x", "cookiecutter answer model_name='../x': expected a DNS-1123 label"),
    "project_slug": (
        "My_Project",
        "cookiecutter answer project_slug='My_Project': expected a DNS-1123 label",
    ),
    "production_approvers": (" , ", "cookiecutter answer production_approvers=' , ': expected at least one"),
    "deployment_target": (
        "heroku",
        "cookiecutter answer deployment_target='heroku': expected one of local, kserve",
    ),
    "gpu_runner_labels": (
        "linux, gpu",
        "cookiecutter answer gpu_runner_labels='linux, gpu': expected a list",
    ),
    "python_version": ("3.9", "cookiecutter answer python_version='3.9': expected a Python version 3.11"),
    "mlflow_tracking_uri": (
        "mlflow.db",
        "cookiecutter answer mlflow_tracking_uri='mlflow.db': expected a URI",
    ),
    "owning_team": ("ml-team", "cookiecutter answer owning_team='ml-team': expected a GitHub user or team"),
}


@pytest.mark.parametrize("key", sorted(BAD_ANSWERS))
def test_a_bad_answer_fails_with_one_line_and_creates_nothing(tmp_path: Path, key: str) -> None:
    value, message = BAD_ANSWERS[key]
    out = tmp_path / "out"
    proc = bake(ROOT, out, {key: value})
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {message}"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and proc.returncode == 1
    assert list(out.iterdir()) == []


def test_every_bad_answer_is_named_at_once_and_placeholder_owners_are_flagged(tmp_path: Path) -> None:
    proc = bake(ROOT, tmp_path / "out", {"project_slug": "Bad Slug!", "model_name": "../x"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert [line.split("=")[0] for line in proc.stderr.splitlines() if line.startswith("error: ")] == [
        "error: cookiecutter answer project_slug",
        "error: cookiecutter answer model_name",
    ]
    # the template's placeholder owners are taken, with a warning each, and validate flags them
    project = baked(ROOT, tmp_path / "defaults")
    warned = bake(ROOT, tmp_path / "again")
    assert [line.split("=")[0] for line in warned.stderr.splitlines() if line.startswith("warning: ")] == [
        "warning: cookiecutter answer owning_team",
        "warning: cookiecutter answer production_approvers",
    ]
    validated = run_mlops("validate", cwd=project)
    assert validated.returncode == 0
    assert "mlops.yaml: owners.team: @acme/ml-platform is the template's placeholder" in validated.stderr
    assert "owners.production_approvers" in validated.stderr
    own = baked(
        ROOT, tmp_path / "own", {"owning_team": "@tidewater/ml", "production_approvers": "@tidewater/risk"}
    )
    quiet = run_mlops("validate", cwd=own)
    assert quiet.returncode == 0 and "placeholder" not in quiet.stderr


def test_generation_from_a_relative_path(tmp_path: Path) -> None:
    template = template_snapshot(tmp_path / "tpl")
    proc = bake(Path("tpl"), tmp_path / "out", {"model_name": "relative"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    project = tmp_path / "out" / "mlops-gitops-template"
    assert generated_files(project) == expected_files({"model_name": "relative"})
    assert (project / "scripts/mlops_gitops/cli.py").read_bytes() == (
        template / "scripts/mlops_gitops/cli.py"
    ).read_bytes()


def test_generation_from_a_git_url(tmp_path: Path, template_repo: Path) -> None:
    project = baked(f"git+file://{template_repo}", tmp_path / "out", {"model_name": "from-git"})
    assert generated_files(project) == expected_files({"model_name": "from-git"})
    assert run_mlops("validate", cwd=project).returncode == 0


def test_scaffolded_model_equals_the_generated_one(tmp_path: Path) -> None:
    """`mlops model add X` writes exactly what cookiecutter renders for model_name=X."""
    generated = baked(ROOT, tmp_path / "a", {"model_name": "fraud"})
    project = baked(ROOT, tmp_path / "b")
    run_mlops("model", "add", "fraud", cwd=project, check=True)
    for rel in (
        "models/fraud/model.yaml",
        "models/fraud/card.md",
        "environments/staging/fraud.yaml",
        "environments/production/fraud.yaml",
    ):
        assert (project / rel).read_bytes() == (generated / rel).read_bytes(), rel
    # the pipeline's section too: the generated project's only section, added after churn's
    section = (generated / "pipelines/params.yaml").read_text().split("models:\n", 1)[1]
    assert section.startswith("  fraud:\n")
    assert (project / "pipelines/params.yaml").read_text().endswith(section)


def _git(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _cruft(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "cruft"), *args], cwd=cwd, env=base_env(), capture_output=True, text=True, timeout=300
    )


def test_cruft_create_then_update_pulls_in_a_template_change(tmp_path: Path) -> None:
    template = template_snapshot(tmp_path / "template")
    answers = json.dumps({"project_slug": "cruft-demo", "model_name": "scorer"})
    proc = _cruft("create", str(template), "--no-input", "--extra-context", answers, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    project = tmp_path / "cruft-demo"
    assert generated_files(project) == sorted([*expected_files({"model_name": "scorer"}), ".cruft.json"])
    assert run_mlops("validate", cwd=project).returncode == 0
    # cruft's state is in the first commit, as cruft wrote it: nothing left to commit
    assert _git("status", "--porcelain", cwd=project) == ""
    assert ".cruft.json" in _git("ls-files", cwd=project).split()
    assert (
        json.loads(_git("show", "HEAD:.cruft.json", cwd=project))["context"]["cookiecutter"]["model_name"]
        == "scorer"
    )

    # The template moves on: a machinery change and a rendered-file change, in one commit.
    (template / ".github/actionlint.yaml").write_text(
        (template / ".github/actionlint.yaml").read_text() + "    - gpu-h100\n"
    )
    readme = template / "{{cookiecutter.project_slug}}/README.md"
    readme.write_text(
        readme.read_text() + "\n## Added upstream\n\nA section for {{ cookiecutter.model_name }}.\n"
    )
    _git("commit", "-qam", "Upstream change", cwd=template)
    new_commit = _git("rev-parse", "HEAD", cwd=template).strip()

    assert _cruft("check", cwd=project).returncode != 0
    proc = _cruft("update", "--skip-apply-ask", "--allow-untracked-files", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (project / ".github/actionlint.yaml").read_text().endswith("    - gpu-h100\n")
    assert (project / "README.md").read_text().endswith("\n## Added upstream\n\nA section for scorer.\n")
    assert json.loads((project / ".cruft.json").read_text())["commit"] == new_commit
    assert not (project / ".git" / "upstream-template-old").exists()
    assert _cruft("check", cwd=project).returncode == 0
    assert run_mlops("validate", cwd=project).returncode == 0
