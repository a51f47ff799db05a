"""`mlops model add`: scaffold a model and its manifests; refuse bad names; converge on re-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_mlops, tree_digest

FILES = (
    "models/fraud/model.yaml",
    "models/fraud/card.md",
    "environments/staging/fraud.yaml",
    "environments/production/fraud.yaml",
)


def test_add_scaffolds_a_valid_model_in_every_environment(repo: Path) -> None:
    proc = run_mlops("model", "add", "fraud", "--output", "json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"] == [{"path": f, "result": "created"} for f in FILES]
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
    assert results == {**{f: "unchanged" for f in FILES[:3]}, FILES[3]: "created"}
    assert tree_digest(repo) == complete


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
