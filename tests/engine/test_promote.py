"""`mlops promote`: a branch and a commit editing one manifest, with real git and a real
MLflow registry (sqlite). Versions are registered directly with MLflow's client, since what
is promoted here is the number, not the artifact. GitHub itself (`gh pr create`) cannot be
reached from here; without an authenticated `gh` the command prints the next step."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import run_mlops, tree_digest
from .helpers import git, merge
from .workflows import sandbox

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    from mlflow import MlflowClient

    path = sandbox(tmp_path / "repo")
    model = sorted(p.name for p in (path / "models").iterdir())[0]
    client = MlflowClient(f"sqlite:///{path / 'mlflow.db'}")
    client.create_registered_model(model)
    for _ in range(2):
        client.create_model_version(model, source=(tmp_path / "artifact").as_uri())
    return path


def model_of(repo: Path) -> str:
    return sorted(p.name for p in (repo / "models").iterdir())[0]


def state(repo: Path) -> tuple[dict[str, str], str, str]:
    return tree_digest(repo), git(repo, "branch", "--list"), git(repo, "rev-parse", "HEAD")


def test_promote_makes_a_branch_and_a_commit(repo: Path) -> None:
    model = model_of(repo)
    proc = run_mlops(
        "promote",
        model,
        "--to",
        "staging",
        "--version",
        "2",
        "--reason",
        "better recall",
        "--output",
        "json",
        cwd=repo,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["branch"] == f"promote/{model}-staging-v2" and result["changed"] is True
    assert result["pull_request"].startswith(f"git push -u origin promote/{model}-staging-v2 && gh pr create")
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == result["branch"]
    manifest = yaml.safe_load((repo / f"environments/staging/{model}.yaml").read_text())
    assert manifest["version"] == 2
    message = git(repo, "log", "-1", "--format=%B")
    assert message.startswith(f"Promote {model} v2 to staging")
    assert "Version: 2 (was none)" in message and "Reason: better recall" in message
    assert git(repo, "diff", "--name-only", "HEAD~1") == f"environments/staging/{model}.yaml"
    assert run_mlops("validate", cwd=repo).returncode == 0
    # the same promotion again converges: no new commit
    again = run_mlops("promote", model, "--to", "staging", "--version", "2", "--output", "json", cwd=repo)
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False
    assert git(repo, "rev-parse", "HEAD") == result["commit"]


def test_promote_from_the_environment_below(repo: Path) -> None:
    model = model_of(repo)
    run_mlops("promote", model, "--to", "staging", "--version", "1", cwd=repo, check=True)
    git(repo, "switch", "--quiet", "main")
    git(repo, "merge", "--quiet", "--ff-only", f"promote/{model}-staging-v1")
    proc = run_mlops(
        "promote", model, "--to", "production", "--from", "staging", "--output", "json", cwd=repo
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["version"] == 1
    assert yaml.safe_load((repo / f"environments/production/{model}.yaml").read_text())["version"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ghost", "--to", "staging", "--version", "1"], "error: model 'ghost': not defined"),
        (["{model}", "--to", "qa", "--version", "1"], "error: environment 'qa': not defined"),
        (["{model}", "--to", "staging", "--version", "99"], "error: {model} v99: not in the registry"),
        (
            ["{model}", "--to", "production", "--from", "staging"],
            "error: environments/staging/{model}.yaml: version is null",
        ),
        (["{model}", "--to", "staging"], "error: promote: give exactly one of --version N or --from ENV"),
    ],
)
def test_bad_promotions_are_refused_and_nothing_changes(repo: Path, args: list[str], message: str) -> None:
    model = model_of(repo)
    before = state(repo)
    proc = run_mlops("promote", *[a.format(model=model) for a in args], cwd=repo)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(message.format(model=model)), proc.stderr
    assert state(repo) == before


def test_a_dirty_manifest_is_not_promoted(repo: Path) -> None:
    model = model_of(repo)
    path = repo / f"environments/staging/{model}.yaml"
    path.write_text(path.read_text() + "# local edit\n")
    before = state(repo)
    proc = run_mlops("promote", model, "--to", "staging", "--version", "1", cwd=repo)
    assert proc.returncode == 2
    assert "has uncommitted changes" in proc.stderr
    assert state(repo) == before


def test_no_checkout_leaves_the_working_tree_and_branch_alone(repo: Path) -> None:
    model = model_of(repo)
    manifest = repo / f"environments/staging/{model}.yaml"
    (repo / "notes.txt").write_text("work in progress\n")  # an unrelated uncommitted file stays put
    before_head, before_text = git(repo, "rev-parse", "HEAD"), manifest.read_text()
    proc = run_mlops(
        "promote", model, "--to", "staging", "--version", "2", "--no-checkout", "-o", "json", cwd=repo
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["checked_out"], result["base"]) == (False, "main")
    assert (
        git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
        and git(repo, "rev-parse", "HEAD") == before_head
    )
    assert manifest.read_text() == before_text and (repo / "notes.txt").is_file()
    assert git(repo, "rev-parse", f"{result['branch']}^") == before_head  # branched from main
    assert "version: 2" in git(repo, "show", f"{result['branch']}:environments/staging/{model}.yaml")
    assert (
        git(repo, "diff", "--name-only", before_head, result["branch"])
        == f"environments/staging/{model}.yaml"
    )
    assert f"you are still on main; the promotion: git switch {result['branch']}" in proc.stderr


def test_a_checked_out_promotion_says_how_to_get_back(repo: Path) -> None:
    model = model_of(repo)
    proc = run_mlops("promote", model, "--to", "staging", "--version", "1", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert f"you are on promote/{model}-staging-v1 now; back: git switch main" in proc.stderr


def test_promotions_of_several_models_each_branch_from_where_they_started(repo: Path, tmp_path: Path) -> None:
    """What `mlops register --promote-to` does for every model it registered: each promotion is
    made from the same starting point, never stacked on another model's branch."""
    from mlflow import MlflowClient
    from mlops_gitops.core.config import load_repo
    from mlops_gitops.core.scaffold import add_model, load_for_add
    from mlops_gitops.deploy.promote import promote

    add_model(load_for_add(repo, "second"), "second")
    subprocess.run(["git", "add", "--all"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@l", "commit", "-qm", "second"], cwd=repo, check=True
    )
    MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").create_registered_model("second")
    start = git(repo, "rev-parse", "HEAD")
    loaded = load_repo(repo)
    made = [
        promote(
            loaded, lambda _m, _v: True, name, "staging", 1, None, "trained", open_pr=False, checkout=False
        )
        for name in (model_of(repo), "second")
    ]
    assert [git(repo, "rev-parse", f"{m.branch}^") for m in made] == [start, start]
    assert git(repo, "rev-parse", "HEAD") == start


def promote_json(repo: Path, *args: str) -> dict[str, Any]:
    proc = run_mlops("promote", *args, "--no-pr", "-o", "json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_branches_never_stand_in_the_way(repo: Path) -> None:
    """Merged, stale or someone else's promotion branches: promote and rollback start from main on
    a fresh branch, and "already promoted" means main asks for it."""
    model = model_of(repo)
    manifest = f"environments/staging/{model}.yaml"
    first = promote_json(repo, model, "--to", "staging", "--version", "1")
    merge(repo, first["branch"])
    merge(repo, promote_json(repo, model, "--to", "staging", "--version", "2")["branch"])
    # the merged promote/<model>-staging-v1 is still there: promoting v1 again is a fresh branch
    again = promote_json(repo, model, "--to", "staging", "--version", "1")
    assert (again["changed"], again["branch"]) == (True, f"promote/{model}-staging-v1-2")
    assert git(repo, "rev-parse", f"{again['branch']}^") == git(repo, "rev-parse", "main")
    # the same again converges on that open branch, from wherever the working tree is
    git(repo, "switch", "--quiet", "-c", "feature/unrelated")
    (repo / "notes.txt").write_text("notes\n")
    git(repo, "add", "notes.txt")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@l", "commit", "-qm", "unrelated work")
    same = promote_json(repo, model, "--to", "staging", "--version", "1", "--no-checkout")
    assert (same["changed"], same["branch"], same["commit"]) == (False, again["branch"], again["commit"])
    # someone else pushed a branch of the name a new promotion would take: a fresh name, from main
    git(repo, "branch", f"promote/{model}-production-v2", "feature/unrelated")
    other = promote_json(repo, model, "--to", "production", "--version", "2", "--no-checkout")
    assert other["branch"] == f"promote/{model}-production-v2-2"
    assert git(repo, "rev-parse", f"{other['branch']}^") == git(repo, "rev-parse", "main")
    assert "notes.txt" not in git(repo, "show", "--name-only", "--format=", other["branch"])
    # main asks for v2 in staging: that, and only that, is "already promoted"
    already = run_mlops("promote", model, "--to", "staging", "--version", "2", "--no-pr", cwd=repo)
    assert already.returncode == 0 and already.stdout.startswith(f"already promoted: {model} v2 to staging")
    # a rollback with a merged rollback branch of its name: a fresh one; re-running converges
    git(repo, "switch", "--quiet", "main")
    rolled = json.loads(
        run_mlops("rollback", model, "--env", "staging", "--no-pr", "-o", "json", cwd=repo).stdout
    )
    assert (rolled["branch"], rolled["change"]) == (f"rollback/{model}-staging-v1", "v2 100% -> v1 100%")
    merge(repo, rolled["branch"])
    merge(repo, promote_json(repo, model, "--to", "staging", "--version", "2")["branch"])
    rerolled = json.loads(
        run_mlops("rollback", model, "--env", "staging", "--no-pr", "-o", "json", cwd=repo).stdout
    )
    assert rerolled["branch"] == f"rollback/{model}-staging-v1-2"
    rerun = json.loads(
        run_mlops("rollback", model, "--env", "staging", "--no-pr", "-o", "json", cwd=repo).stdout
    )
    assert (rerun["branch"], rerun["changed"]) == (rerolled["branch"], False)
    assert yaml.safe_load(git(repo, "show", f"{rerolled['branch']}:{manifest}"))["version"] == 1
