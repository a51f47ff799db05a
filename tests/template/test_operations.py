"""A generated repository through a team's second and third day: non-default answers, two models,
and the operations whose meaning Argo CD and Flux define, in the order a team meets them.

- v2 promoted with a 50/50 split added by a second commit on its branch, merged, then rolled
  back: the rollback returns to what served before (v1 alone), never to "minus the last commit";
- break-glass in production, then a reconcile from main, then one `--watch` interval (the hold
  keeps v1, on this machine and on another one sharing the registry), then the revert merged
  and a reconcile (the hold ends by itself); a second incident ended by `mlops resume`;
- a typo merged into model A's staging manifest, then production reconciled and model B rolled
  back in staging (the typo stays in its own deployment; a typo in a model definition too; one
  in mlops.yaml stops everything with one line);
- a promotion through a stale merged branch (a fresh branch from main);
- a version registered from a dirty tree, denied for production naming the files, and
  registered again clean after the commit.

The repository's own fast checks run at the end. Versions come from the real pipeline (`make
train`) where the lineage matters, and from `registered.register_version` (real MLflow models)
where only deployments do. GitHub cannot be reached: no `gh`, so proposals stay branches.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ..conftest import ROOT
from ..engine.registered import register_version
from ..engine.workflows import environment
from .conftest import baked
from .test_life import STATE_TESTS, Life

pytestmark = pytest.mark.slow

ANSWERS = {
    "project_name": "Loan Desk Operations",
    "project_slug": "loan-desk",
    "description": "Scores loan applications for early default; every change by pull request.",
    "model_name": "loan-default",
    "model_purpose": "Rank new loan applications by their risk of default for underwriter review",
    "owning_team": "@lend-co/credit-ml",
    "production_approvers": "@lend-co/credit-risk",
    "gpu_runner_labels": "self-hosted, linux, gpu-a10",
}
A, B = ANSWERS["model_name"], "early-payoff"


def serving(life: Life, env: str, model: str) -> list[int]:
    (row,) = life.mlops("status", model, "--env", env)["deployments"]
    return sorted(int(v) for v in re.findall(r"v(\d+)", row["serving"]))


def records(life: Life, env: str, model: str) -> list[dict[str, Any]]:
    path = life.project / f".mlops/records/{env}/{model}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def registry_tags(project: Path, model: str, version: int) -> dict[str, str]:
    from mlflow import MlflowClient

    return dict(
        MlflowClient(f"sqlite:///{project / 'mlflow.db'}").get_model_version(model, str(version)).tags
    )


def set_version(life: Life, env: str, model: str, version: int, message: str) -> None:
    path = life.project / "environments" / env / f"{model}.yaml"
    path.write_text(re.sub(r"^version: .*$", f"version: {version}", path.read_text(), count=1, flags=re.M))
    life.commit(message)


@pytest.fixture
def life(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # versions are registered in this process: its registry is the project's, whatever an earlier
    # test left in the environment
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLOPS_STATE_DIR", raising=False)
    project = baked(ROOT, tmp_path / "out", ANSWERS)
    environment(project / ".venv")  # same constraints: `make install` finds its stamp
    life = Life(project, tmp_path / "tools", tmp_path)
    yield life
    life.cli("down", ok=(0, 1, 2))


def test_a_team_s_second_and_third_day(life: Life, tmp_path: Path) -> None:
    project = life.project
    life.mlops("model", "add", B, "--like", A, "--purpose", "Flag loans likely to be repaid early")
    assert life.mlops("keys", "init")["result"] == "created"  # production serves signed versions only
    life.commit(f"Add {B} and the team's signing key")
    for model in (A, B):
        assert [register_version(project, model, seed=s) for s in (7, 3)] == [1, 2]
    for env in ("staging", "production"):
        for model in (A, B):
            set_version(life, env, model, 1, f"{model} v1 to {env}")
    life.sh("make reconcile")

    # 1. v2 promoted, a 50/50 split added by a second commit on its branch, merged; then rolled back
    life.mlops("promote", A, "--to", "staging", "--version", "2", "--no-pr")
    life.edit_manifest("staging", A, traffic=[{"version": 2, "percent": 50}, {"version": 1, "percent": 50}])
    life.commit("Split v2 with v1 while we watch")
    life.merge(f"promote/{A}-staging-v2")
    life.sh("make reconcile ENV=staging")
    assert serving(life, "staging", A) == [1, 2]
    back = life.mlops("rollback", A, "--env", "staging", "--no-pr")
    assert back["change"] == "v2 50% + v1 50% -> v1 100%"
    assert back["to"]["traffic"] is None and back["to"]["shadow"] is None
    life.merge(back["branch"])
    life.sh("make reconcile ENV=staging")
    assert serving(life, "staging", A) == [1]
    # any point of the history, by the record ids `mlops history` shows; none that never served
    split = next(
        s for s in life.mlops("history", A, "--env", "staging")["stretches"] if len(s["routing"]) == 2
    )
    again = life.mlops("rollback", A, "--env", "staging", "--to-record", split["id"], "--no-pr")
    assert again["change"] == "v1 100% -> v2 50% + v1 50%"
    never = life.cli("rollback", A, "--env", "staging", "--to-version", "7", "--no-pr", ok=(2,))
    assert "--to-version 7: never served here (expected one of v1, v2)" in never.stderr
    same = life.cli("rollback", A, "--env", "staging", "--to-version", "1", "--no-pr", ok=(2,))
    assert "main asks for v1 100% already (nothing to roll back in git)" in same.stderr

    # 2. break-glass in production; reconcile from main; one --watch interval; the revert merged
    set_version(life, "production", A, 2, f"Promote {A} v2 to production")
    life.sh("make reconcile ENV=production")
    glass = life.mlops("rollback", A, "--env", "production", "--now", "--no-pr", "--reason", "INC-77")
    assert glass["applied"]["ok"] and serving(life, "production", A) == [1]
    assert life.sh("git branch --show-current").stdout.strip() == "main"
    held = life.mlops("reconcile")["results"]
    assert {(r["environment"], r["model"]): r["result"] for r in held}[("production", A)] == "held"
    life.cli("reconcile", "--env", "production", "--watch", "--interval", "0.2", "--iterations", "2")
    assert serving(life, "production", A) == [1]
    (row,) = life.mlops("status", A, "--env", "production")["deployments"]
    assert row["hold"]["reason"] == "INC-77" and "git asks for v2 100%" in row["held"]
    elsewhere = life.mlops("plan", "--env", "production", ok=(1,), MLOPS_STATE_DIR=str(tmp_path / "host-2"))
    assert {c["model"]: c["action"] for c in elsewhere["changes"]}[A] == "held"  # the registry's hold
    life.merge(glass["branch"])
    done = {r["model"]: r["result"] for r in life.mlops("reconcile", "--env", "production")["results"]}
    assert done[A] == "unchanged" and serving(life, "production", A) == [1]
    holds = [(e["action"], e.get("how")) for e in records(life, "production", A) if e["kind"] == "hold"]
    assert holds == [("placed", None), ("ended", "git-agrees")]
    # a second incident, ended by `mlops resume` instead: git's v2 then comes back
    set_version(life, "production", A, 2, f"Promote {A} v2 to production again")
    life.sh("make reconcile ENV=production")
    life.mlops("rollback", A, "--env", "production", "--now", "--no-pr", "--reason", "INC-78")
    life.sh("make reconcile ENV=production")
    assert serving(life, "production", A) == [1]
    assert "resumed" in life.cli("resume", A, "--env", "production", "--reason", "fixed upstream").stdout
    life.sh("make reconcile ENV=production")
    assert serving(life, "production", A) == [2]
    told = life.mlops("history", A, "--env", "production")["stretches"]
    assert [(h["action"], h["how"]) for s in told for h in s["holds"]] == [
        ("placed", None), ("ended", "git-agrees"), ("placed", None), ("ended", "resume"),
    ]  # fmt: skip
    assert "nothing to resume" in life.cli("resume", A, "--env", "production").stdout

    # 3. a typo merged into A's staging manifest; production reconciled; B rolled back in staging
    set_version(life, "staging", B, 2, f"Promote {B} v2 to staging")
    life.sh("make reconcile ENV=staging")
    life.sh("git switch --quiet -c typo")
    path = project / f"environments/staging/{A}.yaml"
    path.write_text(path.read_text().replace("version: 1", "version: v1"))
    life.commit("Tidy the manifest")
    life.merge("typo")
    life.sh("make validate", ok=(2,))  # the gate still fails on it
    life.sh("make reconcile ENV=production")
    rolled = life.mlops("rollback", B, "--env", "staging", "--now", "--no-pr")
    assert rolled["change"] == "v2 100% -> v1 100%" and serving(life, "staging", B) == [1]
    rows = {(r["environment"], r["model"]): r for r in life.mlops("status")["deployments"]}
    assert f"environments/staging/{A}.yaml: version" in rows[("staging", A)]["invalid"]
    assert serving(life, "staging", A) == [1]  # what it served, it serves
    everything = life.mlops("reconcile", ok=(1,))["results"]
    assert {(r["environment"], r["model"]): r["reason"] for r in everything if r["result"] == "invalid"} == {
        ("staging", A): "InvalidSpec"
    }
    life.cli("reconcile", "--prune", ok=(1,))  # never "manifest is gone": it is there, broken
    assert serving(life, "staging", A) == [1]
    invalid = [e for e in records(life, "staging", A) if e.get("result") == "invalid"]
    assert len(invalid) == 1  # recorded once per problem, however many rounds
    refused = life.cli("promote", A, "--to", "staging", "--version", "2", "--no-pr", ok=(2,))
    assert f"environments/staging/{A}.yaml: version" in refused.stderr
    # a typo in B's model definition: only B's deployments
    definition = project / f"models/{B}/model.yaml"
    kept = definition.read_text()
    definition.write_text(kept.replace("risk_tier:", "risk_tear:"))
    plan = life.mlops("plan", ok=(1,))["changes"]
    assert {(c["environment"], c["model"]): c["action"] for c in plan if c["action"] == "invalid"} == {
        ("staging", A): "invalid", ("staging", B): "invalid", ("production", B): "invalid",
    }  # fmt: skip
    # the repository-wide file still stops everything, with one line naming it
    definition.write_text(kept)
    (project / "mlops.yaml").write_text(
        (project / "mlops.yaml").read_text().replace("kind: Project", "kind: Projekt")
    )
    for verb in ("status", "plan", "reconcile"):
        stopped = life.cli(verb, ok=(1, 2))
        said = stopped.stderr
        assert said.count("\n") == 1 and said.startswith("error: mlops.yaml"), said
    life.sh("git checkout -- mlops.yaml")
    life.cli("resume", B, "--env", "staging")
    set_version(life, "staging", A, 1, "Fix the typo")

    # 4. a promotion through a stale merged branch
    again = life.mlops("promote", A, "--to", "staging", "--version", "2", "--no-pr")
    assert (again["changed"], again["branch"]) == (True, f"promote/{A}-staging-v2-2")
    life.merge(again["branch"])
    life.sh("make reconcile ENV=staging")
    assert serving(life, "staging", A) == [2]

    # 5. registered from a dirty tree, for production: said, denied with the files, then clean
    life.sh(f"dvc repro pipelines/dvc.yaml:evaluate@{A}")  # the pipeline, for A alone
    params = project / "pipelines/params.yaml"
    params.write_text(params.read_text() + "# a note on the last run, not committed\n")
    definition = project / f"models/{A}/model.yaml"
    definition.write_text(definition.read_text() + "# thresholds under review, not committed\n")
    registered = life.cli("register", A, "--output", "json")
    files = f"models/{A}/model.yaml, pipelines/dvc.lock, pipelines/params.yaml"
    assert f"warning: {A} is registered from uncommitted work ({files})" in registered.stderr
    (dirty,) = json.loads(registered.stdout)["versions"]
    life.sh("git stash --quiet")  # not on the promotion's branch
    life.mlops("promote", A, "--to", "production", "--version", str(dirty["version"]), "--no-pr")
    gate = life.cli("gate", "--base", "main", "--min-coverage", "0", ok=(1,))
    assert f"{A} v{dirty['version']} to production: trained from uncommitted work: {files}" in gate.stdout
    life.sh("git switch --quiet main && git stash pop --quiet && git checkout -- pipelines/params.yaml")
    life.commit("Train, with the thresholds reviewed", "pipelines", "models")
    (clean,) = life.mlops("register", A)["versions"]
    assert clean["result"] == "registered" and clean["version"] == dirty["version"] + 1
    tags = registry_tags(project, A, clean["version"])
    assert tags["mlops.git.dirty"] == "false" and "mlops.git.uncommitted" not in tags
    assert tags["mlops.fingerprint"] == registry_tags(project, A, dirty["version"])["mlops.fingerprint"]
    (again,) = life.mlops("register", A)["versions"]
    assert (again["result"], again["version"]) == ("unchanged", clean["version"])

    # the repository's own checks that read what these verbs changed, in the state they left it
    # (the rest read nothing a verb changes: the template life runs them, under act)
    checked = life.sh(  # light commands only: fresh interpreters, not the fork server's preload
        f"make validate && make unit PYTEST_ARGS=\"-m 'not slow' -n0 {STATE_TESTS}\"", MLOPS_TESTS_FORK="0"
    )
    assert re.search(r"\b4 passed", checked.stdout), checked.stdout[-2000:]
