"""Everyday operations in the sequences a team runs them, judged against Argo CD's and Flux's
promises: break-glass holds until git agrees (on every reconciler of the environment) or `mlops
resume`, one bad file stays in its own (environment, model), and a split names its roles for
every reader. The whole script of a team's second day, in a generated repository, is
tests/template/test_operations.py.

Everything is real: git history with merges, the MLflow registry (sqlite), model servers on
loopback ports answering real HTTP requests, the `mlops` command as a process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import git_commit_all, run_mlops
from .test_promote import git, merge
from .test_reconcile import http, set_manifest, url_of

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(served: Path) -> Path:
    return served


def ok(*args: str, repo: Path, env_extra: dict[str, str] | None = None) -> Any:
    """Run an `mlops` verb that must succeed; its JSON answer when it printed one."""
    proc = run_mlops(*args, cwd=repo, env_extra=env_extra)
    assert proc.returncode == 0, f"mlops {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout) if "-o" in args else proc.stdout


def serving(repo: Path, env: str = "staging", model: str = "churn") -> list[int]:
    return http("GET", f"{url_of(repo, env) if model == 'churn' else url_for(repo, env, model)}/health")[1][
        "versions"
    ]


def url_for(repo: Path, env: str, model: str) -> str:
    state = json.loads((repo / f".mlops/servers/{env}/{model}.json").read_text())
    return f"http://{state['host']}:{state['port']}"


def entries(repo: Path, env: str = "staging", model: str = "churn") -> list[dict[str, Any]]:
    path = repo / f".mlops/records/{env}/{model}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def manifest_on(repo: Path, rev: str, env: str = "staging", model: str = "churn") -> dict[str, Any]:
    return yaml.safe_load(git(repo, "show", f"{rev}:environments/{env}/{model}.yaml"))


def test_break_glass_holds_until_git_agrees_on_every_reconciler(repo: Path, tmp_path: Path) -> None:
    set_manifest(repo, "staging", "Promote churn v1 to staging", version=1)
    ok("reconcile", "--env", "staging", repo=repo)
    set_manifest(repo, "staging", "Promote churn v2 to staging", version=2)
    ok("reconcile", "--env", "staging", repo=repo)

    glass = ok(
        "rollback",
        "churn",
        "--env",
        "staging",
        "--now",
        "--no-pr",
        "--reason",
        "incident 7",
        "-o",
        "json",
        repo=repo,
    )
    assert glass["applied"]["ok"] and glass["change"] == "v2 100% -> v1 100%"
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"  # the working tree stays where it was
    assert serving(repo) == [1]

    # main still asks for v2: a plain reconcile (and one --watch round) leaves v1 serving, held
    done = ok("reconcile", "--env", "staging", "-o", "json", repo=repo)
    (only,) = done["results"]
    assert (only["action"], only["result"]) == ("held", "held") and "incident 7" in only["message"]
    ok("reconcile", "--env", "staging", "--watch", "--interval", "0.2", "--iterations", "2", repo=repo)
    assert serving(repo) == [1]
    plan = run_mlops("plan", "--env", "staging", "-o", "json", cwd=repo)
    assert plan.returncode == 1 and json.loads(plan.stdout)["changes"][0]["action"] == "held"
    (row,) = ok("status", "churn", "--env", "staging", "-o", "json", repo=repo)["deployments"]
    assert row["hold"]["reason"] == "incident 7" and row["hold"]["by"] and row["hold"]["at"]
    assert "git asks for v2 100%" in row["held"] and glass["branch"] in row["held"]
    # another machine (its own state directory, the same registry) sees the same hold
    elsewhere = {"MLOPS_STATE_DIR": str(tmp_path / "other-host")}
    seen = json.loads(
        run_mlops("plan", "--env", "staging", "-o", "json", cwd=repo, env_extra=elsewhere).stdout
    )
    assert seen["changes"][0]["action"] == "held"

    # the revert merged: git asks for what runs, the hold ends by itself, recorded
    merge(repo, glass["branch"])
    done = ok("reconcile", "--env", "staging", "-o", "json", repo=repo)
    assert done["results"][0]["result"] == "unchanged" and serving(repo) == [1]
    holds = [e for e in entries(repo) if e["kind"] == "hold"]
    assert [(h["action"], h.get("how")) for h in holds] == [("placed", None), ("ended", "git-agrees")]
    assert (
        ok("status", "churn", "--env", "staging", "-o", "json", repo=repo)["deployments"][0]["hold"] is None
    )

    # a second incident, ended by `mlops resume`: then git's v2 comes back
    set_manifest(repo, "staging", "Promote churn v2 to staging again", version=2)
    ok("reconcile", "--env", "staging", repo=repo)
    ok("rollback", "churn", "--env", "staging", "--now", "--no-pr", "--reason", "incident 8", repo=repo)
    ok("reconcile", "--env", "staging", repo=repo)
    assert serving(repo) == [1]
    said = ok("resume", "churn", "--env", "staging", "--reason", "v2 fixed upstream", repo=repo)
    assert "resumed" in said
    ok("reconcile", "--env", "staging", repo=repo)
    assert serving(repo) == [2]
    last = [e for e in entries(repo) if e["kind"] == "hold"][-1]
    assert (last["action"], last["how"], last["reason"]) == ("ended", "resume", "v2 fixed upstream")
    told = ok("history", "churn", "--env", "staging", "-o", "json", repo=repo)
    held = [h for s in told["stretches"] for h in s["holds"]]
    assert [h["action"] for h in held] == ["placed", "ended", "placed", "ended"]
    assert "nothing to resume" in ok("resume", "churn", "--env", "staging", repo=repo)


def test_one_bad_file_stays_in_its_own_deployment(repo: Path) -> None:
    from .registered import register_version

    ok("model", "add", "fraud", "--like", "churn", repo=repo)
    git_commit_all(repo, "Add fraud")
    assert register_version(repo, "fraud", seed=5) == 1
    assert register_version(repo, "fraud", seed=9) == 2
    set_manifest(repo, "staging", "churn v1 to staging", version=1)
    for env, version in (("staging", 1), ("production", 1)):
        path = repo / f"environments/{env}/fraud.yaml"
        path.write_text(path.read_text().replace("version: null", f"version: {version}"))
    git_commit_all(repo, "fraud v1 to staging and production")
    ok("reconcile", repo=repo)
    path = repo / "environments/staging/fraud.yaml"
    path.write_text(path.read_text().replace("version: 1", "version: 2"))
    git_commit_all(repo, "fraud v2 to staging")
    ok("reconcile", "--env", "staging", repo=repo)

    # a typo merged into churn's staging manifest
    path = repo / "environments/staging/churn.yaml"
    path.write_text(path.read_text().replace("version: 1", "version: one"))
    git_commit_all(repo, "churn: a typo")
    validate = run_mlops("validate", cwd=repo)
    assert (
        validate.returncode == 1
        and "environments/staging/churn.yaml: version" in validate.stdout + validate.stderr
    )

    ok("reconcile", "--env", "production", repo=repo)  # another environment: untouched by it
    everything = run_mlops("reconcile", "-o", "json", cwd=repo)
    assert everything.returncode == 1  # the broken one counts as a failure, the rest was done
    results = {(r["environment"], r["model"]): r for r in json.loads(everything.stdout)["results"]}
    broken = results[("staging", "churn")]
    assert (broken["result"], broken["reason"]) == ("invalid", "InvalidSpec")
    assert "environments/staging/churn.yaml: version" in broken["message"]
    assert {k: r["result"] for k, r in results.items() if k != ("staging", "churn")} == {
        ("staging", "fraud"): "unchanged",
        ("production", "fraud"): "unchanged",
        ("production", "churn"): "unchanged",
    }
    assert serving(repo) == [1]  # what it served, it keeps serving
    run_mlops("reconcile", "--prune", cwd=repo)  # never "manifest is gone": it is there, broken
    assert serving(repo) == [1]
    invalid = [e for e in entries(repo) if e.get("result") == "invalid"]
    assert len(invalid) == 1 and invalid[0]["reason"].startswith(
        "InvalidSpec: environments/staging/churn.yaml"
    )

    rows = {(r["environment"], r["model"]): r for r in ok("status", "-o", "json", repo=repo)["deployments"]}
    assert (
        rows[("staging", "churn")]["sync"] == "Unknown" and "version" in rows[("staging", "churn")]["invalid"]
    )
    assert rows[("staging", "fraud")]["sync"] == "Synced" and rows[("staging", "fraud")]["serving"] == "v2"
    plan = json.loads(run_mlops("plan", "--env", "staging", "-o", "json", cwd=repo).stdout)["changes"]
    assert {c["model"]: c["action"] for c in plan} == {"churn": "invalid", "fraud": "unchanged"}

    # an emergency in the other model still rolls back, at once
    glass = ok("rollback", "fraud", "--env", "staging", "--now", "--no-pr", "-o", "json", repo=repo)
    assert glass["change"] == "v2 100% -> v1 100%" and serving(repo, "staging", "fraud") == [1]
    # promoting the broken one is refused with its own line; the other promotes
    refused = run_mlops("promote", "churn", "--to", "staging", "--version", "2", "--no-pr", cwd=repo)
    assert refused.returncode == 2 and "environments/staging/churn.yaml: version" in refused.stderr
    ok("promote", "fraud", "--to", "production", "--version", "2", "--no-pr", "--no-checkout", repo=repo)

    # a broken model definition: only that model's deployments
    definition = repo / "models/fraud/model.yaml"
    definition.write_text(definition.read_text().replace("risk_tier:", "risk_tear:"))
    git_commit_all(repo, "fraud: a typo in its definition")
    plan = json.loads(run_mlops("plan", "-o", "json", cwd=repo).stdout)["changes"]
    assert {(c["environment"], c["model"]): c["action"] for c in plan} == {
        ("staging", "churn"): "invalid",
        ("production", "churn"): "unchanged",
        ("staging", "fraud"): "invalid",
        ("production", "fraud"): "invalid",
    }
    # the repository-wide file still stops everything, with one line
    (repo / "mlops.yaml").write_text(
        (repo / "mlops.yaml").read_text().replace("kind: Project", "kind: Projekt")
    )
    for verb in (["status"], ["plan"], ["reconcile"]):
        stopped = run_mlops(*verb, cwd=repo)
        assert stopped.returncode != 0 and stopped.stderr.count("\n") == 1 and "mlops.yaml" in stopped.stderr
    assert serving(repo) == [1]


def roles_seen(repo: Path, tmp_path: Path) -> dict[str, tuple[int, int]]:
    """(baseline, challenger) as each reader names them after traffic through the split: status,
    history, compare and the evidence pack's history."""
    import zipfile

    ok(
        "predict",
        "churn",
        "--env",
        "staging",
        "--input",
        str(tmp_path / "rows.csv"),
        "--batch-size",
        "1",
        repo=repo,
    )
    (row,) = ok("status", "churn", "--env", "staging", "-o", "json", repo=repo)["deployments"]
    split = ok("history", "churn", "--env", "staging", "-o", "json", repo=repo)["stretches"][-1]
    compared = run_mlops("compare", "churn", "--env", "staging", "-o", "json", cwd=repo)
    assert compared.returncode in (0, 1, 3), compared.stderr
    told = json.loads(compared.stdout)
    pack = tmp_path / "pack.zip"
    ok(
        "evidence",
        "churn",
        "--env",
        "staging",
        "--version",
        str(row["challenger"]),
        "--out",
        str(pack),
        repo=repo,
    )
    with zipfile.ZipFile(pack) as archive:
        packed = json.loads(archive.read("history.json"))["stretches"][-1]
    return {
        "status": (row["stable"], row["challenger"]),
        "history": (split["version"], split["canary"]),
        "compare": (told["baseline"], told["challenger"]),
        "evidence": (packed["version"], packed["canary"]),
    }


def test_a_split_names_its_stable_version_and_challenger_for_every_reader(repo: Path, tmp_path: Path) -> None:
    """`version` is the stable version; the challenger is named beside it. A split written by the
    verb and one written by hand in either spelling: every reader names the same two."""
    from .registered import features

    X, y = features(rows=120, seed=5)
    X.assign(churned=y).to_csv(tmp_path / "rows.csv", index=False)
    set_manifest(repo, "staging", "Promote churn v1 to staging", version=1)
    ok("reconcile", "--env", "staging", repo=repo)

    made = ok(
        "promote",
        "churn",
        "--to",
        "staging",
        "--version",
        "2",
        "--canary",
        "30",
        "--no-pr",
        "-o",
        "json",
        repo=repo,
    )
    assert made["branch"] == "promote/churn-staging-v2-canary-30"
    manifest = manifest_on(repo, made["branch"])
    assert (manifest["version"], manifest["canary"]) == (1, {"version": 2, "percent": 30})
    merge(repo, made["branch"])
    ok("reconcile", "--env", "staging", repo=repo)
    assert set(roles_seen(repo, tmp_path).values()) == {(1, 2)}

    # by hand, the older spelling: v2 is the stable one because `version` says so
    set_manifest(repo, "staging", "v2 stable, v1 beside it", version=2, canary=None,
                 traffic=[{"version": 2, "percent": 60}, {"version": 1, "percent": 40}])  # fmt: skip
    text = (repo / "environments/staging/churn.yaml").read_text()
    (repo / "environments/staging/churn.yaml").write_text(text.replace("canary: null\n", ""))
    git_commit_all(repo, "drop the empty canary")
    ok("reconcile", "--env", "staging", repo=repo)
    assert set(roles_seen(repo, tmp_path).values()) == {(2, 1)}

    # the plain promotion ends the split: the challenger is the stable one, alone
    git(repo, "switch", "--quiet", "main")
    done = ok("promote", "churn", "--to", "staging", "--version", "1", "--no-pr", "-o", "json", repo=repo)
    final = manifest_on(repo, done["branch"])
    assert (final["version"], final.get("canary"), final.get("traffic")) == (1, None, None)
    refused = run_mlops(
        "promote", "churn", "--to", "staging", "--version", "2", "--canary", "10", "--no-pr", cwd=repo
    )
    assert refused.returncode == 2 and "--canary needs a stable version beside v2" in refused.stderr
