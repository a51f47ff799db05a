"""`mlops model add`: scaffold a model, its pipeline section and its manifests; refuse bad names;
converge on re-run; `--like` copies settings, never words; validate names a model the pipeline
does not know."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ..conftest import run_mlops, tree_digest

FILES = (
    "models/fraud/model.yaml",
    "models/fraud/card.md",
    "environments/staging/fraud.yaml",
    "environments/production/fraud.yaml",
)
PARAMS = "pipelines/params.yaml"


def test_add_scaffolds_a_valid_model_in_every_environment(repo: Path) -> None:
    proc = run_mlops("model", "add", "fraud", "--output", "json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"] == [
        *({"path": f, "result": "created"} for f in FILES),
        {"path": PARAMS, "result": "section added"},
    ]
    sections = yaml.safe_load((repo / PARAMS).read_text())["models"]
    assert list(sections) == ["churn", "fraud"] and sections["fraud"] == sections["churn"]
    for rel in FILES:
        if rel.endswith(".yaml"):
            assert "fraud" in (repo / rel).read_text()
    card = (repo / "models/fraud/card.md").read_text()  # a template of its own, for `mlops evidence`
    opening = "{" * 2  # spelt so: this file is copied into generated repositories verbatim
    assert card.startswith("{" + "#-") and f"# Model card: {opening} model.name }}}} v{opening}" in card
    assert run_mlops("validate", cwd=repo).returncode == 0
    listed = json.loads(run_mlops("model", "list", "--output", "json", cwd=repo, check=True).stdout)
    assert [m["model"] for m in listed["models"]] == ["churn", "fraud"]
    assert listed["models"][1]["versions"] == {"staging": None, "production": None}


def test_add_follows_the_environments_in_mlops_yaml(repo: Path) -> None:
    path = repo / "mlops.yaml"
    path.write_text(path.read_text().replace("  - name: staging\n", "  - name: dev\n  - name: staging\n"))
    (repo / "environments/dev").mkdir()
    text = (
        (repo / "environments/staging/churn.yaml")
        .read_text()
        .replace("environment: staging", "environment: dev")
    )
    (repo / "environments/dev/churn.yaml").write_text(text)
    run_mlops("model", "add", "fraud", cwd=repo, check=True)
    assert "environment: dev" in (repo / "environments/dev/fraud.yaml").read_text()
    assert run_mlops("validate", cwd=repo).returncode == 0


@pytest.mark.parametrize("name", ["../x", "Fraud", "fraud_model", "fraud-", "a" * 64, "x/../../etc"])
def test_bad_names_are_refused_and_nothing_changes(repo: Path, name: str) -> None:
    before = tree_digest(repo)
    proc = run_mlops("model", "add", name, cwd=repo)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: model name {name!r}: not allowed (expected a DNS-1123 label: lower-case letters, "
        "digits and '-', 1-63 characters)"
    ]
    assert tree_digest(repo) == before


def test_adding_an_existing_model_is_refused(repo: Path) -> None:
    before = tree_digest(repo)
    proc = run_mlops("model", "add", "churn", cwd=repo)
    assert proc.returncode == 2
    assert proc.stderr == "error: models/churn: model 'churn' already exists (expected a new model name)\n"
    assert tree_digest(repo) == before


def test_rerun_after_an_interruption_finishes_the_job(repo: Path) -> None:
    run_mlops("model", "add", "fraud", cwd=repo, check=True)
    complete = tree_digest(repo)
    (repo / FILES[3]).unlink()  # as if killed before the last file was written
    assert run_mlops("validate", cwd=repo).returncode == 1
    proc = run_mlops("model", "add", "fraud", "--output", "json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    results = {f["path"]: f["result"] for f in json.loads(proc.stdout)["files"]}
    assert results == {**{f: "unchanged" for f in FILES[:3]}, FILES[3]: "created", PARAMS: "unchanged"}
    assert tree_digest(repo) == complete


def test_rerun_after_an_interruption_before_the_pipeline_section(repo: Path) -> None:
    before = (repo / PARAMS).read_text()
    run_mlops("model", "add", "fraud", cwd=repo, check=True)
    complete = tree_digest(repo)
    (repo / PARAMS).write_text(before)  # killed before the section was written
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "pipelines/params.yaml: models.fraud: missing: the pipeline does not train this model "
        "(expected a section for it: `mlops model add fraud` writes one, or copy another model's)"
    ]
    run_mlops("model", "add", "fraud", cwd=repo, check=True)
    assert tree_digest(repo) == complete


def test_a_pipeline_section_without_a_model_is_reported(repo: Path) -> None:
    path = repo / PARAMS
    path.write_text(path.read_text() + "  ghost:\n    data: {rows: 10}\n")
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "pipelines/params.yaml: models.ghost: no model definition "
        "(expected models/ghost/model.yaml (`mlops model add ghost`), or the section removed)"
    ]


def test_a_new_models_words_are_placeholders_or_its_purpose(repo: Path) -> None:
    run_mlops(
        "model", "add", "fraud", "--purpose", "Flag card payments for manual review", cwd=repo, check=True
    )
    definition = yaml.safe_load((repo / FILES[0]).read_text())
    assert definition["description"] == "Flag card payments for manual review"
    assert all(text.startswith("TODO: ") for text in definition["card"].values())
    words = [definition["description"], *definition["card"].values()]
    assert not any("churn" in text for text in words)  # nothing of the other model's words
    proc = run_mlops("model", "add", "claims", "--purpose", "two\nlines", cwd=repo)
    assert (
        proc.returncode == 2 and "--purpose: 9 characters (expected one line of at most 200)" in proc.stderr
    )


def test_like_copies_settings_and_pipeline_parameters_but_not_words(repo: Path) -> None:
    churn = repo / "models/churn/model.yaml"
    churn.write_text(
        churn.read_text()
        .replace("risk_tier: high", "risk_tier: low")
        .replace("roc_auc: {min: 0.75}", "roc_auc: {min: 0.7}  # agreed with risk, 2026-11")
        .replace("intended_use: 'TODO", "intended_use: 'Retention outreach lists. TODO")
    )
    production = repo / "environments/production/churn.yaml"
    production.write_text(production.read_text().replace("replicas: 1", "replicas: 3"))
    params = repo / PARAMS
    params.write_text(params.read_text().replace("max_iter: 200", "max_iter: 120  # tuned"))
    proc = run_mlops("model", "add", "fraud", "--like", "churn", "--output", "json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert run_mlops("validate", cwd=repo).returncode == 0
    text = (repo / FILES[0]).read_text()
    fraud, theirs = yaml.safe_load(text), yaml.safe_load(churn.read_text())
    assert fraud["name"] == "fraud" and fraud["risk_tier"] == "low"
    for key in ("owner", "task", "target_column", "metrics", "drift", "fairness"):
        assert fraud[key] == theirs[key], key
    assert "roc_auc: {min: 0.7}  # agreed with risk, 2026-11" in text  # comments travel with settings
    assert "Retention outreach" not in text and fraud["card"]["intended_use"].startswith("TODO")
    assert (
        yaml.safe_load((repo / "environments/production/fraud.yaml").read_text())["target"]["replicas"] == 3
    )
    sections = yaml.safe_load(params.read_text())["models"]
    assert sections["fraud"] == sections["churn"] and sections["fraud"]["train"]["max_iter"] == 120
    assert "  fraud:\n" in params.read_text() and params.read_text().count("max_iter: 120  # tuned") == 2


def test_like_an_unknown_model_is_refused(repo: Path) -> None:
    before = tree_digest(repo)
    proc = run_mlops("model", "add", "fraud", "--like", "ghost", cwd=repo)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: model 'ghost': not defined (expected one of churn)")
    assert tree_digest(repo) == before


def test_a_conflicting_file_stops_everything_before_writing(repo: Path) -> None:
    (repo / FILES[3]).write_text("# someone else's file\n")
    before = tree_digest(repo)
    proc = run_mlops("model", "add", "fraud", cwd=repo)
    assert proc.returncode != 0
    assert not (repo / FILES[0]).exists() and not (repo / FILES[1]).exists()
    assert tree_digest(repo) == before


def test_add_is_refused_while_another_file_is_invalid(repo: Path) -> None:
    path = repo / "environments/staging/churn.yaml"
    path.write_text(path.read_text().replace("version: null", "version: latest"))
    before = tree_digest(repo)
    proc = run_mlops("model", "add", "fraud", cwd=repo)
    assert proc.returncode == 1
    assert proc.stderr.startswith('error: environments/staging/churn.yaml: version: got string "latest"')
    assert tree_digest(repo) == before
