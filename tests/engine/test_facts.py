"""`mlops facts`: the policy input for a promotion, from real git history and a real MLflow
registry (sqlite; the version is registered directly with lineage tags, as `mlops register`
writes them). GitHub's review API cannot be reached from here: approvals come from event
payloads, and the API path is tested through its small fetch interface."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from mlops_gitops.gate.facts import approvals, judge_approvals

from ..conftest import run_mlops
from .registered import FAIRNESS
from .workflows import sandbox

pytestmark = pytest.mark.slow
NOW = "2026-11-23T10:00:00Z"


@pytest.fixture
def promoted(tmp_path: Path) -> tuple[Path, str]:
    from mlflow import MlflowClient

    repo = sandbox(tmp_path / "repo")
    model = sorted(p.name for p in (repo / "models").iterdir())[0]
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    client.create_registered_model(model)
    client.create_model_version(
        model,
        source=(tmp_path / "artifact").as_uri(),
        tags={
            "mlops.git.commit": "abc123",
            "mlops.metrics": json.dumps({"roc_auc": 0.84, "f1": 0.59, **FAIRNESS}),
            "mlops.data": json.dumps({"pipelines/data/x/raw.csv": "md5"}),
            "mlops.params": json.dumps({"seed": 7}),
            "mlops.device": "cpu",
            "mlops.artifact_sha256": "f" * 64,
            "mlops.signature": "true",
            "mlops.report.passed": "true",
            "mlops.report.baseline": "none",
        },
    )
    run_mlops("promote", model, "--to", "staging", "--version", "1", "--reason", "test", cwd=repo, check=True)
    return repo, model


def test_facts_describe_the_promotion(promoted: tuple[Path, str]) -> None:
    repo, model = promoted
    proc = run_mlops("facts", "--base", "main", "--now", NOW, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    assert doc["change"] == {
        "model": model,
        "environment": "staging",
        "path": f"environments/staging/{model}.yaml",
        "from_version": None,
        "to_version": 1,
        "head_rev": head,
        "base_rev": doc["change"]["base_rev"],
    }
    assert doc["manifest"]["version"] == 1 and doc["previous"]["version"] is None
    assert doc["model"]["name"] == model and doc["model"]["risk_tier"] in ("low", "medium", "high")
    version = doc["version"]
    assert version["metrics"] == {"roc_auc": 0.84, "f1": 0.59, **FAIRNESS}
    assert version["fairness"] == {
        "age": {"demographic_parity_difference": 0.02, "equalized_odds_difference": 0.05}
    }
    assert version["lineage"]["commit"] == "abc123" and version["lineage"]["device"] == "cpu"
    assert version["artifact_sha256"] == "f" * 64 and version["signature"] is True
    assert version["report"] == {"passed": True, "baseline": "none"}
    assert version["artifact_sha256_actual"] is None  # its source does not exist: unverifiable
    assert doc["history"] == {} and doc["baseline"] is None  # never deployed; nothing in production
    assert (doc["approvals"]["known"], doc["approvals"]["count"], doc["approvals"]["approvers"]) == (
        False,
        0,
        [],
    )
    assert doc["approvals"]["codeowners"]  # CODEOWNERS names the manifest's owners
    assert doc["drift"]["status"] == "unknown" and doc["now"] == NOW
    again = run_mlops("facts", "--base", "main", "--now", NOW, cwd=repo)
    assert again.stdout == proc.stdout  # deterministic


def test_a_review_event_counts_only_as_the_actions_run_s_own_event_for_the_head(
    promoted: tuple[Path, str], tmp_path: Path
) -> None:
    """A hand-written event file is no review; the Actions runtime's own pull_request_review
    event is, when it approved the pull request's head and that head is the commit decided."""
    repo, model = promoted
    head = subprocess.run(
        ["git", "rev-parse", f"promote/{model}-staging-v1"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    subprocess.run(["git", "switch", "-q", f"promote/{model}-staging-v1"], cwd=repo, check=True)

    def facts_with(event: dict[str, object], **runtime: str) -> dict[str, object]:
        path = tmp_path / "review.json"
        path.write_text(json.dumps(event))
        proc = run_mlops(
            "facts", "--base", "main", "--now", NOW, "--event", str(path), cwd=repo, env_extra=runtime
        )
        (doc,) = json.loads(proc.stdout)
        return doc["approvals"]

    event = {
        "review": {"state": "approved", "user": {"login": "risk-officer"}, "commit_id": head},
        "pull_request": {"number": 7, "user": {"login": "data-scientist"}, "head": {"sha": head}},
    }
    actions = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request_review"}
    approved = facts_with(event, **actions, GITHUB_EVENT_PATH=str(tmp_path / "review.json"))
    assert (approved["known"], approved["source"], approved["reviewers"]) == (True, "event", ["risk-officer"])
    assert approved["author"] == "data-scientist"
    # staging's owner is a team; no GitHub here to say whether risk-officer is in it: not counted
    assert (approved["count"], approved["unverified"]) == (0, ["risk-officer"])

    other = tmp_path / "runtime.json"
    other.write_text("{}")
    stale = {
        **event,
        "review": {"state": "approved", "user": {"login": "risk-officer"}, "commit_id": "a" * 40},
    }
    for given, runtime, why in (
        (event, {}, "a review event outside a GitHub Actions run"),
        (event, {**actions, "GITHUB_EVENT_PATH": str(other)}, "not this Actions run's own event"),
        (
            event,
            {**actions, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": "@"},
            "not pull_request_review",
        ),
        (
            stale,
            {**actions, "GITHUB_EVENT_PATH": "@"},
            f"reviewed aaaaaaaaaaaa, not the pull request's head {head[:12]}",
        ),
    ):
        runtime = {k: str(tmp_path / "review.json") if v == "@" else v for k, v in runtime.items()}
        refused = facts_with(given, **runtime)
        assert (refused["known"], refused["count"], refused["reviewers"]) == (False, 0, []), (why, refused)
        assert [e["user"] for e in refused["excluded"]] == ["risk-officer"] and why in refused["excluded"][0][
            "why"
        ]
    elsewhere = subprocess.run(
        ["git", "rev-parse", "main"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    moved = facts_with(
        {
            "review": {"state": "approved", "user": {"login": "risk-officer"}, "commit_id": elsewhere},
            "pull_request": {"number": 7, "user": {"login": "data-scientist"}, "head": {"sha": elsewhere}},
        },
        **actions,
        GITHUB_EVENT_PATH=str(tmp_path / "review.json"),
    )
    assert moved["count"] == 0 and "is not the commit decided" in moved["excluded"][0]["why"]


def test_approvals_from_the_api_count_each_reviewer_s_latest_decision_on_the_head() -> None:
    head, old = "h" * 40, "o" * 40
    reviews = [
        {"user": {"login": "a"}, "state": "APPROVED", "commit_id": head},
        {"user": {"login": "b"}, "state": "APPROVED", "commit_id": head},
        {"user": {"login": "b"}, "state": "CHANGES_REQUESTED", "commit_id": head},
        {"user": {"login": "c"}, "state": "APPROVED", "commit_id": head},
        {"user": {"login": "c"}, "state": "COMMENTED", "commit_id": head},  # a comment undoes nothing
        {"user": {"login": "d"}, "state": "APPROVED", "commit_id": old},  # before the last push
    ]
    found = {"reviews": reviews, "head": head}
    result = approvals({"pull_request": {"number": 3}}, fetch=lambda number: found if number == 3 else None)
    assert (result["known"], result["source"], result["reviewers"]) == (True, "github-api", ["a", "c"])
    assert result["excluded"] == [
        {
            "user": "d",
            "why": "approved oooooooooooo, not the pull request's head hhhhhhhhhhhh (a stale approval)",
        }
    ]
    judged = judge_approvals(result, [], None)
    assert judged["count"] == 2 and judged["excluded"] == result["excluded"]
    assert approvals({"pull_request": {"number": 3}}, fetch=lambda number: None)["known"] is False


def test_no_change_gives_no_documents_and_a_bad_time_is_refused(promoted: tuple[Path, str]) -> None:
    repo, _ = promoted
    assert json.loads(run_mlops("facts", "--base", "HEAD", "--now", NOW, cwd=repo).stdout) == []
    proc = run_mlops("facts", "--base", "main", "--now", "yesterday", cwd=repo)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "error: --now 'yesterday': not a time (expected RFC 3339, e.g. 2026-11-23T10:00:00Z)"
    )


def gate(repo: Path, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    out = tmp_path / name
    run_mlops("facts", "--base", "main", "--now", NOW, "--out", str(out), cwd=repo, check=True)
    files = sorted(str(p) for p in out.glob("*.json"))
    assert files, "no facts written"
    return run_mlops("check", *files, "--namespace", "promotion", "--output", "json", cwd=repo)


def test_the_gate_allows_staging_and_denies_production_too_early(
    promoted: tuple[Path, str], tmp_path: Path
) -> None:
    repo, model = promoted
    staging = gate(repo, tmp_path, "staging")
    assert staging.returncode == 0, staging.stdout + staging.stderr
    subprocess.run(["git", "switch", "-q", "main"], cwd=repo, check=True)
    subprocess.run(["git", "merge", "-q", "--ff-only", f"promote/{model}-staging-v1"], cwd=repo, check=True)
    run_mlops("promote", model, "--to", "production", "--from", "staging", cwd=repo, check=True)
    production = gate(repo, tmp_path, "production")
    assert production.returncode == 1
    messages = [f["msg"] for report in json.loads(production.stdout) for f in report["failures"]]
    assert any(
        "no healthy deployment record in staging (expected it to run there healthy for 24h first)" in m
        for m in messages
    ), messages
    risk = yaml.safe_load((repo / f"models/{model}/model.yaml").read_text())["risk_tier"]
    wanting = "0 approval(s) that count, 2 required for a high-risk model"
    assert any(wanting in m for m in messages) == (risk == "high")


def test_the_gate_denies_a_tampered_artifact_hash(promoted: tuple[Path, str], tmp_path: Path) -> None:
    from mlflow import MlflowClient

    repo, model = promoted
    MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").set_model_version_tag(
        model, "1", "mlops.artifact_sha256", "x"
    )
    proc = gate(repo, tmp_path, "tampered")
    assert proc.returncode == 1
    messages = [f["msg"] for report in json.loads(proc.stdout) for f in report["failures"]]
    assert messages == [
        f"{model} v1 to staging: no artifact sha256 (expected the hash recorded at registration)"
    ]


def test_mlops_gate_is_the_whole_gate_and_writes_the_comment(promoted: tuple[Path, str]) -> None:
    """`mlops gate` (what `make policy` and pr.yml run): the policies' tests with coverage, the
    manifests and workflows, the promotion judged from its facts, the comment written."""
    repo, model = promoted
    proc = run_mlops("gate", "--now", NOW, "-o", "json", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] and result["tests"]["failed"] == [] and result["coverage"]["percent"] >= 90
    assert result["facts"] == [f".mlops/facts/staging--{model}.json"]
    assert [r["filename"] for r in result["promotions"]] == result["facts"]
    assert {r["filename"] for r in result["check"]} >= {
        ".github/workflows/pr.yml",
        f"environments/staging/{model}.yaml",
    }
    comment = (repo / ".mlops/policy-gate.md").read_text()
    assert re.match(r"### Policy gate: (✅ \*\*allowed\*\*|⚠️ \*\*allowed with warnings\*\*)", comment), (
        comment
    )
    assert f"`.mlops/facts/staging--{model}.json`" in comment

    tests = repo / "policies/manifests/manifests_test.rego"
    tests.write_text(tests.read_text() + "\ntest_deny_always_wrong if {\n\t1 == 2\n}\n")
    failed = run_mlops("gate", "--now", NOW, cwd=repo)
    assert failed.returncode == 1 and "1 failed: manifests_test.test_deny_always_wrong" in failed.stderr
    assert "### Policy gate:" in failed.stdout  # every step ran all the same: the comment is whole

    subprocess.run(["git", "checkout", "-q", "--", "policies"], cwd=repo, check=True)
    subprocess.run(["git", "switch", "-q", "main"], cwd=repo, check=True)
    quiet = run_mlops("gate", cwd=repo)
    assert quiet.returncode == 0 and "no environment manifest changed: no promotion to judge" in quiet.stderr
    assert quiet.stdout == "" and not (repo / ".mlops/policy-gate.md").exists()


def test_only_distinct_code_owners_who_neither_promoted_nor_trained_count() -> None:
    """#15 class 5: the rules a team without required reviewers needs, as facts for the gate."""
    from mlops_gitops.gate.facts import judge_approvals

    rosters = {"acme/model-risk": ["risk-officer", "Quant"], "acme/ml-leads": None}  # None: unreadable
    raw = {
        "known": True,
        "source": "github-api",
        "author": "Promoter",
        "reviewers": ["promoter", "trainer", "risk-officer", "quant", "lead", "outsider", "named"],
    }
    owners = ["@acme/model-risk", "@acme/ml-leads", "@named"]
    judged = judge_approvals(raw, owners, "trainer", rosters.get)
    assert judged["approvers"] == ["named", "quant", "risk-officer"] and judged["count"] == 3
    assert judged["excluded"] == [
        {"user": "promoter", "why": "opened the pull request (no self-approval)"},
        {"user": "trainer", "why": "trained the version"},
    ]
    assert judged["unverified"] == ["lead", "outsider"]  # ml-leads' members could not be read
    everyone_known = judge_approvals(
        raw, owners, "trainer", {"acme/model-risk": ["risk-officer"], "acme/ml-leads": []}.get
    )
    assert everyone_known["approvers"] == ["named", "risk-officer"]
    assert {e["user"] for e in everyone_known["excluded"]} == {
        "promoter",
        "trainer",
        "quant",
        "lead",
        "outsider",
    }
    # without owners in CODEOWNERS, distinct reviewers count, less the promoter and the trainer
    assert judge_approvals(raw, [], "trainer", None)["count"] == 5
    # the same reviewer twice is one approval
    assert judge_approvals({**raw, "reviewers": ["named", "named"]}, owners, None, None)["count"] == 1
