"""`mlops validate`: every problem at once, one clear line each, exit 1, nothing changed."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from ..conftest import run_mlops, tree_digest
from .conftest import FIXTURES

CASES = yaml.safe_load((FIXTURES / "invalid" / "cases.yaml").read_text())


def test_a_scaffolded_repository_is_valid(repo: Path) -> None:
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert "all valid; 6 file(s) checked" in proc.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_file_gets_one_clear_line_and_changes_nothing(repo: Path, case: str) -> None:
    spec = CASES[case]
    shutil.copyfile(FIXTURES / "invalid" / f"{case}.yaml", repo / spec["target"])
    before = tree_digest(repo)
    started = time.monotonic()
    proc = run_mlops("validate", cwd=repo)
    assert time.monotonic() - started < 30  # the alias bomb must not expand
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert spec["expect"] in lines, f"missing line:\n{spec['expect']}\ngot:\n{proc.stdout}"
    assert all(line.startswith(spec["target"] + ": ") for line in lines), proc.stdout
    assert tree_digest(repo) == before


def test_every_problem_is_reported_at_once(repo: Path) -> None:
    for case in ("wrong_type", "bad_risk_tier", "unknown_target"):
        shutil.copyfile(FIXTURES / "invalid" / f"{case}.yaml", repo / CASES[case]["target"])
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 1
    for case in ("wrong_type", "bad_risk_tier", "unknown_target"):
        assert CASES[case]["expect"] in proc.stdout.splitlines()
    assert "3 problem(s) in 3 file(s)" in proc.stderr


def test_json_output_lists_problems_with_their_parts(repo: Path) -> None:
    shutil.copyfile(FIXTURES / "invalid" / "wrong_type.yaml", repo / "environments/staging/churn.yaml")
    proc = run_mlops("validate", "--output", "json", cwd=repo)
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert result["kind"] == "ValidationResult" and result["valid"] is False
    assert result["problems"] == [
        {
            "path": "environments/staging/churn.yaml",
            "field": "target.replicas",
            "problem": 'got string "two"',
            "expected": "an integer",
        }
    ]
    assert "environments/staging/churn.yaml" in result["files"]


def validation_says(repo: Path, line: str) -> None:
    """`mlops validate` in repo exits 1 and prints `line` as one of its lines."""
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 1 and line in proc.stdout.splitlines(), proc.stdout


def test_missing_manifest_for_a_model_is_reported(repo: Path) -> None:
    (repo / "environments/production/churn.yaml").unlink()
    validation_says(
        repo,
        "environments/production/churn.yaml: missing "
        "(expected a manifest for model 'churn' in every environment)",
    )


def test_manifest_for_an_undefined_model_is_reported(repo: Path) -> None:
    text = (repo / "environments/staging/churn.yaml").read_text().replace("model: churn", "model: ghost")
    (repo / "environments/staging/ghost.yaml").write_text(text)
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 1
    assert (
        "environments/staging/ghost.yaml: model: no model 'ghost' "
        "(expected a model defined in models/ghost/model.yaml)"
    ) in proc.stdout.splitlines()


def test_environment_directory_not_in_mlops_yaml_is_reported(repo: Path) -> None:
    (repo / "environments/qa").mkdir()
    shutil.copyfile(repo / "environments/staging/churn.yaml", repo / "environments/qa/churn.yaml")
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 1
    assert (
        "environments/qa: unknown environment (expected one of staging, production (listed in mlops.yaml))"
    ) in proc.stdout.splitlines()


def test_oversized_file_is_refused_without_parsing(repo: Path) -> None:
    path = repo / "environments/staging/churn.yaml"
    path.write_text(path.read_text() + "#" * (1 << 20) + "\n")
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 1
    assert (
        f"environments/staging/churn.yaml: file is {path.stat().st_size} bytes (expected at most 1048576)"
        in proc.stdout.splitlines()
    )


def test_promote_from_must_name_an_earlier_environment(repo: Path) -> None:
    path = repo / "mlops.yaml"
    path.write_text(path.read_text().replace("promote_from: staging", "promote_from: canary"))
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 1
    assert (
        "mlops.yaml: environments[1].promote_from: got 'canary' "
        "(expected an environment listed before this one)"
    ) in proc.stdout.splitlines()


def test_outside_a_repository_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = run_mlops("validate", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path.resolve()}: no mlops.yaml here or above "
        "(expected to run inside a generated repository)"
    ]


def test_a_model_card_must_be_a_template_of_the_names_evidence_fills_in(repo: Path) -> None:
    card = repo / "models/churn/card.md"
    card.write_text(card.read_text() + "\n{{ model.name }} signed by {{ owner_signature }}\n")
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 1
    assert proc.stdout.startswith(
        "models/churn/card.md: owner_signature: unknown name (expected one of approvals, decisions, "
    )
    card.write_text("{% if model.name %}unclosed\n")
    proc = run_mlops("validate", cwd=repo)
    assert proc.stdout.startswith("models/churn/card.md: line 1: Unexpected end of template.")
    card.unlink()
    proc = run_mlops("validate", cwd=repo)
    assert "models/churn/card.md: missing (expected the model card template" in proc.stdout


# -- names and paths: nothing the repository declares is followed outside it (#15) ---------------
def test_a_name_that_climbs_out_is_refused_before_any_file_is_touched(repo: Path) -> None:
    (repo / "pipelines").mkdir(exist_ok=True)
    lock = repo / "pipelines/dvc.lock"
    lock.write_text("schema: '2.0'\n")
    (repo / ".mlops/locks").mkdir(parents=True)
    before = tree_digest(repo)
    for verb in (
        ("reconcile", "--env", "../pipelines/dvc"),
        ("reconcile", "--env", "../../pipelines/dvc"),
        ("plan", "--env", "../pipelines/dvc"),
        ("status", "--env", "Staging"),
    ):
        proc = run_mlops(*verb, cwd=repo)
        assert proc.returncode == 2, (verb, proc.stdout, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert tree_digest(repo) == before, verb
    assert lock.read_text() == "schema: '2.0'\n"


def test_links_out_of_the_repository_are_refused_not_read(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    manifest = repo / "environments/staging/churn.yaml"
    shutil.copyfile(manifest, outside / "churn.yaml")
    shutil.copytree(repo / "environments/production", outside / "production")
    shutil.copyfile(repo / "models/churn/model.yaml", outside / "model.yaml")
    (outside / "secret.txt").write_text("AWS_SECRET_ACCESS_KEY=do-not-print-me\n")

    cases = {
        "environments/staging/churn.yaml": outside / "churn.yaml",
        "environments/production": outside / "production",
        "models/churn/model.yaml": outside / "model.yaml",
        "models/churn/card.md": outside / "secret.txt",
    }
    for link, target in cases.items():
        path = repo / link
        saved = tmp_path / "saved"
        shutil.move(path, saved)
        path.symlink_to(target)
        try:
            proc = run_mlops("validate", cwd=repo)
            assert proc.returncode == 1, (link, proc.stdout)
            assert (
                f"{link}: a link out of the repository (expected a file in the repository "
                "(nothing it declares is followed outside it))"
            ) in proc.stdout.splitlines(), proc.stdout
            assert "do-not-print-me" not in proc.stdout + proc.stderr
            plan = run_mlops("plan", "--env", "staging", cwd=repo)
            assert "do-not-print-me" not in plan.stdout + plan.stderr
            # the card is evidence, not a deployment's input: the plan does not read it at all
            assert plan.returncode != 0 or link.endswith("card.md"), (link, plan.stdout)
        finally:
            path.unlink()
            shutil.move(saved, path)
    assert run_mlops("validate", cwd=repo).returncode == 0


def test_a_card_linked_out_never_reaches_the_evidence_pack(repo: Path, tmp_path: Path) -> None:
    from mlops_gitops.core.config import Repo
    from mlops_gitops.core.errors import MlopsError
    from mlops_gitops.evidence.render import render_card

    secret = tmp_path / "secret.txt"
    secret.write_text("do-not-print-me\n")
    card = repo / "models/churn/card.md"
    card.unlink()
    card.symlink_to(secret)
    with pytest.raises(MlopsError, match=r"^models/churn/card\.md: a link out of the repository") as err:
        render_card(Repo(repo, {}), "churn", {})
    assert "do-not-print-me" not in str(err.value)


def test_two_files_for_one_model_are_an_error(repo: Path) -> None:
    manifest = repo / "environments/staging/churn.yaml"
    shutil.copyfile(manifest, manifest.with_suffix(".yml"))
    before = tree_digest(repo)
    validation_says(
        repo,
        "environments/staging/churn.yaml: two files for model 'churn' (churn.yaml and churn.yml) "
        "(expected one manifest per model: remove one)",
    )
    plan = run_mlops("plan", "--env", "staging", "-o", "json", cwd=repo)
    assert plan.returncode == 1  # that deployment is invalid (InvalidSpec), the rest would plan
    (change,) = json.loads(plan.stdout)["changes"]
    assert (change["action"], change["sync"]) == ("invalid", "Unknown") and "two files" in change["detail"]
    after = tree_digest(repo)
    after.pop("mlflow.db", None)  # the registry the plan read (git-ignored), not a file of the repository
    assert after == before


def test_an_emptied_manifest_is_never_planned_as_a_removal(repo: Path) -> None:
    (repo / "environments/staging/churn.yaml").write_text("# emptied by mistake\n")
    proc = run_mlops("plan", "--env", "staging", cwd=repo)
    assert proc.returncode != 0
    assert "remove" not in proc.stdout
    assert "environments/staging/churn.yaml: empty file (or comments only)" in proc.stdout + proc.stderr


def test_serving_the_network_is_a_choice_that_is_said(repo: Path) -> None:
    project = repo / "mlops.yaml"
    text = project.read_text()
    project.write_text(text.replace("host: 127.0.0.1", "host: 0.0.0.0\n    allow_remote: true"))
    proc = run_mlops("validate", cwd=repo)
    assert proc.returncode == 0, proc.stdout
    project.write_text(text.replace("host: 127.0.0.1", "host: ::1"))
    assert run_mlops("validate", cwd=repo).returncode == 0
    # and said again wherever the servers are started or looked at
    project.write_text(text.replace("host: 127.0.0.1", "host: 0.0.0.0\n    allow_remote: true"))
    status = run_mlops("status", cwd=repo)
    assert status.returncode == 0, status.stderr
    assert (
        "warning: deploy.local.host 0.0.0.0: the model servers answer anyone who can reach this host"
        in status.stderr
    )
    project.write_text(text)
    assert "warning:" not in run_mlops("status", cwd=repo).stderr


def test_yaml_booleans_mean_what_yaml_1_2_tools_read() -> None:
    from mlops_gitops.core import yamlio

    for word in ("yes", "No", "ON", "off"):
        with pytest.raises(yamlio.YamlError, match=f"suspend: {word} is a YAML 1.1 boolean"):
            yamlio.loads(f"suspend: {word}\n", "m.yaml")
        # what the policies read: the string conftest's YAML 1.2 parser gives them
        assert yamlio.loads_data(f"suspend: {word}\n") == {"suspend": word}
    assert yamlio.loads("a: true\nb: False\nc: 'yes'\n", "m.yaml") == {"a": True, "b": False, "c": "yes"}
