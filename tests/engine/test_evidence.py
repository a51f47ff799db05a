"""Evidence packs (`mlops evidence`, `mlops evidence verify`) over real parts: a real MLflow
registry (the sqlite default) with real model versions, the real reconciler and model server,
real git history, the real OPA engine recording the gate's decisions, evidently's drift
report, and the summary page rendered in Debian's headless Chromium (driven by Playwright).
Nothing is faked: GitHub's review API is simply absent, so approvals come from git history.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ..conftest import base_env, git_commit_all, run_mlops
from .helpers import served_repo, url_of
from .mlflow_server import free_port
from .registered import features

__all__ = ["served_repo"]  # the fixture `repo`: a copy of the registered repository

pytestmark = pytest.mark.slow


def zip_members(pack: Path) -> dict[str, str]:
    """Each member's sha256: a difference names the file, never a byte-by-byte diff of two zips."""
    with zipfile.ZipFile(pack) as archive:
        return {name: hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()}


APPROVER = "@acme/model-risk"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def set_version(repo: Path, env: str, version: int) -> None:
    path = repo / "environments" / env / "churn.yaml"
    path.write_text(re.sub(r"^version: .*$", f"version: {version}", path.read_text(), count=1, flags=re.M))


def promote_through_the_gate(repo: Path, version: int) -> int:
    """A promotion branch, the gate's facts and check (--record), then a merge commit that
    carries the approval as a trailer (what the GitHub merge of an approved PR stands for)."""
    git(repo, "switch", "--quiet", "-c", f"promote/churn-staging-v{version}")
    set_version(repo, "staging", version)
    git_commit_all(repo, f"Promote churn v{version} to staging")
    # main moves on meanwhile, and the branch is brought up to date (GitHub's "Update branch")
    git(repo, "switch", "--quiet", "main")
    (repo / "NOTES.md").write_text("meanwhile on main\n")
    git_commit_all(repo, "Meanwhile on main")
    git(repo, "switch", "--quiet", f"promote/churn-staging-v{version}")
    git(repo, "merge", "--quiet", "--no-edit", "main")
    out = repo / ".mlops" / "facts"
    proc = run_mlops("facts", "--base", "main", "--now", "2026-11-23T10:00:00Z", "--out", str(out), cwd=repo)
    assert proc.returncode == 0, proc.stderr
    files = [str(p) for p in sorted(out.glob("*.json"))]
    gate = run_mlops("check", *files, "--namespace", "promotion", "--record", cwd=repo)
    assert gate.returncode in (0, 1), gate.stderr
    assert f"decision recorded: churn v{version} staging" in gate.stderr
    git(repo, "switch", "--quiet", "main")
    git(
        repo,
        "merge",
        "--quiet",
        "--no-ff",
        "-m",
        f"Merge promote/churn-staging-v{version}",
        "-m",
        f"Approved-by: {APPROVER}",
        f"promote/churn-staging-v{version}",
    )
    return gate.returncode


def report_for(repo: Path, candidate: int, baseline: int) -> None:
    """The champion/challenger report on the pipeline's own evaluation split."""
    env = {**base_env(), "PYTHONPATH": f"{repo / 'scripts'}:{repo / 'pipelines'}"}
    for stage in ("ingest", "prepare"):
        subprocess.run(
            [sys.executable, "-m", f"stages.{stage}", "churn"], cwd=repo / "pipelines", env=env, check=True
        )
    proc = run_mlops("report", "churn", "--candidate", str(candidate), "--baseline", str(baseline), cwd=repo)
    assert proc.returncode in (0, 1), proc.stderr


def unpack(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rewrite(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def render(html: Path, screenshot: Path) -> tuple[list[str], str]:
    """Open the page in headless Chromium; console errors and page errors, and the page's h1."""
    from playwright.sync_api import sync_playwright

    from .conftest import chromium_path

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None
        )
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto(html.as_uri())
        page.wait_for_load_state("load")
        heading = page.inner_text("h1")
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return problems, heading


def test_the_render_check_sees_a_broken_page(tmp_path: Path) -> None:
    """The Chromium check below can fail: a script error and a missing image are caught."""
    page = tmp_path / "broken.html"
    page.write_text('<h1>x</h1><img src="missing.png"><script>undefined_call()</script>')
    problems, heading = render(page, tmp_path / "broken.png")
    assert heading == "x"
    assert any("undefined_call" in p for p in problems), problems
    assert any("missing.png" in p for p in problems), problems


def test_pack_of_a_promoted_version(repo: Path, tmp_path: Path) -> None:
    report_for(repo, candidate=2, baseline=1)
    gate = promote_through_the_gate(repo, 2)
    proc = run_mlops("reconcile", "--env", "staging", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    # traffic for the monitor: 250 logged rows, then a drift check with its evidently report
    from mlops_gitops.deploy.targets.local import http_json

    rows = features(250, seed=11)[0].to_dict(orient="records")
    for start in range(0, len(rows), 50):
        status, _ = http_json(
            "POST", f"{url_of(repo)}/predict", {"dataframe_records": rows[start : start + 50]}
        )
        assert status == 200
    reference = tmp_path / "reference.csv"
    features(400, seed=7)[0].to_csv(reference, index=False)
    proc = run_mlops("drift", "--env", "staging", "--reference", str(reference), cwd=repo)
    assert proc.returncode in (0, 1), proc.stderr

    pack_path = tmp_path / "pack.zip"
    proc = run_mlops(
        "evidence", "churn", "--env", "staging", "-o", str(pack_path), "--output", "json", cwd=repo
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["version"], result["environment"]) == (2, "staging")
    files = unpack(pack_path)

    # index.json: every other file, with its sha256
    index = json.loads(files["index.json"])
    assert {e["path"] for e in index["files"]} == set(files) - {"index.json"}
    for entry in index["files"]:
        assert hashlib.sha256(files[entry["path"]]).hexdigest() == entry["sha256"]
    assert hashlib.sha256(files["index.json"]).hexdigest() == result["index_sha256"]

    lineage = json.loads(files["lineage.json"])
    assert lineage["version"] == 2 and lineage["artifact_unchanged"] is True
    assert len(lineage["artifact_sha256_now"]) == 64  # hashed as stored now, in the one download
    assert "sha256_actual" not in json.loads(files["supply-chain/signature.json"])  # lineage.json's
    assert lineage["code"]["commit"] == "0" * 40 and lineage["data"]

    metrics = json.loads(files["metrics.json"])
    assert metrics["report"]["included"] and metrics["report"]["matches_registered"]
    assert files["report/report.md"].decode().startswith("### Champion/challenger: `churn` v2")
    assert any(name.startswith("report/") and name.endswith(".png") for name in files)

    # the registered fixture's artifact store is shared between the tests' copies: this
    # repository's decisions are the ones made on its commits
    history = set(git(repo, "rev-list", "--all").split())
    decisions = [d for d in json.loads(files["policy/decisions.json"]) if d["head_rev"] in history]
    assert [(d["environment"], d["version"]) for d in decisions] == [("staging", 2)]
    decision = decisions[0]
    # v2 lost its champion/challenger report against v1: the gate denied (exit 1), the merge
    # went ahead all the same, and the pack says so
    assert gate == 1 and decision["outcome"] == "deny"
    assert {f["rule"] for f in decision["findings"]} == {"deny_report"}
    (finding,) = json.loads(files["index.json"])["findings"]
    assert finding.startswith("v2 was deployed to staging at ") and finding.endswith("denied it: deny_report")
    promotion = next(p for p in decision["policies"] if p["path"] == "policies/promotion/promotion.rego")
    source = (repo / "policies/promotion/promotion.rego").read_bytes()
    assert promotion["sha256"] == hashlib.sha256(source).hexdigest()
    assert files[promotion["file"]] == source  # the policy that decided, byte for byte
    assert "EU AI Act Art. 15" in promotion["controls"]

    approvals = json.loads(files["approvals.json"])
    # an Approved-by trailer is whatever the pusher wrote: a claim, listed, never counted
    assert approvals["claimed_in_git"] == [APPROVER] and approvals["counted"] is None
    assert approvals["git"][0]["subject"] == "Promote churn v2 to staging"
    assert approvals["git"][0]["merge"]["subject"] == "Merge promote/churn-staging-v2"
    assert approvals["gate"][0]["known"] is False  # no GitHub here: the gate said "unknown"
    assert any(g.startswith("approvals.json: no approval the gate read from GitHub") for g in index["gaps"])

    deployments = json.loads(files["deployments.json"])
    assert deployments["this_version"]["deployments"] == 1
    assert deployments["records"][-1]["result"] == "healthy" and deployments["records"][-1]["version"] == 2

    (stretch,) = json.loads(files["history.json"])["stretches"]  # v2's stretch of `mlops history`
    assert stretch["version"] == 2 and stretch["until"] is None
    assert stretch["why"]["subject"] == "Promote churn v2 to staging"
    assert stretch["gate"]["outcome"] == "deny" and stretch["gate"]["denied_by"] == ["deny_report"]

    monitoring = json.loads(files["monitoring/summary.json"])
    assert monitoring["drift_history"] and monitoring["drift_history"][-1]["version"] == 2
    assert any(name.endswith(".html") for name in monitoring["drift_reports"])
    assert monitoring["inferences"]["rows"] == 250

    card = files["model-card.md"].decode()
    assert card.startswith("# Model card: churn v2")
    assert "| roc_auc | 0.84 | >= 0.75 | met |" in card
    assert "Approvals: none recorded (no GitHub review read by the gate)." in card and APPROVER not in card
    assert "{" * 2 not in card and "{" + "%" not in card  # (spelt so: this file is copied verbatim)

    controls = {(c["framework"], c["control"]): c for c in index["controls"]}
    # the deployment over a denied decision is a finding against the oversight controls
    art14 = controls[("EU AI Act", "Art. 14 human oversight")]
    assert art14["status"] == "finding" and art14["notes"][0] == finding, art14
    assert controls[("EU AI Act", "Art. 10 data and data governance")]["status"] == "evidenced"
    assert (
        "Promotion gate" in controls[("EU AI Act", "Art. 15 accuracy, robustness, cybersecurity")]["policies"]
    )

    # the same inputs, the same pack
    again = tmp_path / "again.zip"
    assert run_mlops("evidence", "churn", "--env", "staging", "-o", str(again), cwd=repo).returncode == 0
    assert zip_members(again) == zip_members(pack_path)  # names the files that differ, if any
    assert again.read_bytes() == pack_path.read_bytes()

    # intact, then tampered three ways, each named
    proc = run_mlops("evidence", "verify", str(pack_path), cwd=repo)
    assert proc.returncode == 0 and "intact" in proc.stdout, proc.stderr
    for name, change, expected in [
        (
            "model-card.md",
            lambda f: {**f, "model-card.md": f["model-card.md"] + b"\nApproved by nobody.\n"},
            "altered",
        ),
        ("extra.txt", lambda f: {**f, "extra.txt": b"x"}, "added"),
        ("deployments.json", lambda f: {k: v for k, v in f.items() if k != "deployments.json"}, "missing"),
    ]:
        tampered = tmp_path / f"tampered-{name}.zip"
        rewrite(tampered, change(files))
        proc = run_mlops("evidence", "verify", str(tampered), cwd=repo)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"{name}:" in proc.stderr and expected in proc.stderr, proc.stderr
    assert run_mlops("evidence", "verify", str(pack_path), "--digest", "0" * 64, cwd=repo).returncode == 1
    # a file and index.json edited together: every sha256 in the index matches, but the index is
    # not one the registry recorded when the pack was built
    forged = dict(files)
    forged["model-card.md"] = files["model-card.md"] + b"\nApproved by the board.\n"
    forged_index = json.loads(files["index.json"])
    for entry in forged_index["files"]:
        if entry["path"] == "model-card.md":
            entry["sha256"] = hashlib.sha256(forged["model-card.md"]).hexdigest()
    forged["index.json"] = json.dumps(forged_index, indent=2, sort_keys=True).encode()
    rewrite(tmp_path / "forged.zip", forged)
    proc = run_mlops("evidence", "verify", str(tmp_path / "forged.zip"), "--output", "json", cwd=repo)
    verdict = json.loads(proc.stdout)
    assert proc.returncode == 1 and verdict["anchored"] is False
    assert verdict["problems"][0].startswith("not anchored: the registry holds no record of an index"), (
        verdict
    )
    named = ("--model", "churn", "--env", "staging", "--version", "2")
    proc = run_mlops("evidence", "verify", str(tmp_path / "forged.zip"), *named, "--output", "json", cwd=repo)
    verdict = json.loads(proc.stdout)
    assert proc.returncode == 1 and verdict["anchor"] == {
        "model": "churn",
        "environment": "staging",
        "version": 2,
    }
    assert [p for p in verdict["problems"] if "not one the registry recorded" in p], verdict
    # the identity fields changed or removed with them: the anchor, not the pack, says whose it is
    for changed in (
        {**forged_index, "version": 1},
        {k: v for k, v in forged_index.items() if k != "version"},
    ):
        rewrite(tmp_path / "unnamed.zip", {**forged, "index.json": json.dumps(changed).encode()})
        proc = run_mlops("evidence", "verify", str(tmp_path / "unnamed.zip"), cwd=repo)
        assert proc.returncode == 1 and "not anchored: the registry holds no record" in proc.stderr, (
            proc.stderr
        )
        named = ("--model", "churn", "--env", "staging", "--version", "2")
        proc = run_mlops("evidence", "verify", str(tmp_path / "unnamed.zip"), *named, cwd=repo)
        assert proc.returncode == 1 and "(expected churn v2 in staging, the anchor's)" in proc.stderr, (
            proc.stderr
        )
    # outside the repository no anchor can be read: a failure, unless --no-anchor, said in words
    outside = run_mlops("evidence", "verify", str(pack_path), cwd=tmp_path)
    assert outside.returncode == 1 and "not anchored:" in outside.stderr, outside.stderr
    loose = run_mlops("evidence", "verify", str(pack_path), "--no-anchor", cwd=tmp_path)
    assert loose.returncode == 0 and "intact" in loose.stdout and "not anchored" in loose.stdout, loose.stdout
    anchored = run_mlops("evidence", "verify", str(pack_path), cwd=repo)
    assert "anchored: churn v2 in staging, as the registry recorded it" in anchored.stdout, anchored.stdout
    not_a_pack = tmp_path / "not.zip"
    not_a_pack.write_text("hello")
    proc = run_mlops("evidence", "verify", str(not_a_pack), cwd=repo)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1

    # the summary reads well in a browser: no console error, nothing failed to load
    html = tmp_path / "summary.html"
    html.write_bytes(files["summary.html"])
    shot = tmp_path / "summary.png"
    problems, heading = render(html, shot)
    assert problems == []
    assert heading == "Evidence pack: churn v2 in staging"
    assert shot.stat().st_size > 20_000
    keep = repo.parent.parent / "evidence-summary.png"  # kept beside the test's tmp dir
    shutil.copy(shot, keep)


def test_pack_of_a_rolled_back_version(repo: Path, tmp_path: Path) -> None:
    for version in (1, 4):  # v4 answers its first call, then raises: rolled back after the switch
        set_version(repo, "staging", version)
        git_commit_all(repo, f"Promote churn v{version} to staging")
        proc = run_mlops("reconcile", "--env", "staging", cwd=repo)
    assert proc.returncode == 1, proc.stderr

    pack_path = tmp_path / "v4.zip"
    proc = run_mlops(
        "evidence", "churn", "--env", "staging", "--version", "4", "-o", str(pack_path), cwd=repo
    )
    assert proc.returncode == 0, proc.stderr
    assert "gap: policy/decisions.json: no recorded gate decision for staging" in proc.stderr
    files = unpack(pack_path)
    deployments = json.loads(files["deployments.json"])
    mine = deployments["this_version"]
    assert (mine["deployments"], mine["rollbacks"]) == (0, 1)
    assert mine["recovery_s"][0] > 0
    rollback = deployments["records"][-1]
    assert (rollback["result"], rollback["version"], rollback["previous"]) == ("rolled-back", 1, 4)
    assert deployments["registry_history"]["staging"]["result"] == "rolled-back"
    assert "automatic rollbacks: 1" in files["model-card.md"].decode()
    index = json.loads(files["index.json"])
    art12 = next(c for c in index["controls"] if c["control"] == "Art. 12 record-keeping")
    assert art12["status"] == "gap" and any("no recorded gate decision" in n for n in art12["notes"])
    assert run_mlops("evidence", "verify", str(pack_path), cwd=repo).returncode == 0

    # without --version: the version @staging points at, v1, which kept serving
    proc = run_mlops(
        "evidence", "churn", "--env", "staging", "-o", str(tmp_path / "v1.zip"), "--output", "json", cwd=repo
    )
    assert json.loads(proc.stdout)["version"] == 1

    html = tmp_path / "summary.html"
    html.write_bytes(files["summary.html"])
    problems, heading = render(html, tmp_path / "v4.png")
    assert problems == [] and heading == "Evidence pack: churn v4 in staging"


def test_a_registry_that_cannot_record_does_not_hide_the_verdict(repo: Path) -> None:
    git(repo, "switch", "--quiet", "-c", "promote/churn-staging-v1")
    set_version(repo, "staging", 1)
    git_commit_all(repo, "Promote churn v1 to staging")
    out = repo / ".mlops" / "facts"
    assert run_mlops("facts", "--base", "main", "--out", str(out), cwd=repo).returncode == 0
    files = [str(p) for p in sorted(out.glob("*.json"))]
    unreachable = f"http://127.0.0.1:{free_port()}"
    proc = run_mlops(
        "check",
        *files,
        "-n",
        "promotion",
        "--record",
        "-o",
        "json",
        cwd=repo,
        env_extra={"MLFLOW_TRACKING_URI": unreachable},
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)[0]["filename"].endswith("churn.json")  # the verdict came out first
    assert proc.stderr.strip().splitlines()[-1].startswith("error: decision not recorded: registry ")


def test_bad_input_writes_nothing(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "pack.zip"
    proc = run_mlops("evidence", "churn", "--env", "staging", "-o", str(out), cwd=repo)
    assert proc.returncode == 2 and "no version runs or ran there" in proc.stderr
    proc = run_mlops("evidence", "churn", "--env", "staging", "--version", "99", "-o", str(out), cwd=repo)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    card = repo / "models" / "churn" / "card.md"
    card.write_text(card.read_text() + "\n" + "{" * 2 + " owner_signature }}\n")
    proc = run_mlops("evidence", "churn", "--env", "staging", "--version", "1", "-o", str(out), cwd=repo)
    assert proc.returncode == 1  # the card is configuration: validation names the unknown name first
    assert "models/churn/card.md: owner_signature: unknown name (expected one of approvals, " in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".pack.zip*"))


def test_codeowners_matching() -> None:
    from mlops_gitops.core.github import owns as _owns

    path = "environments/production/churn.yaml"
    assert _owns("*", path) and _owns("/environments/production/", path) and _owns("*.yaml", path)
    assert _owns("environments/", path) and not _owns("/environments/staging/", path)
    assert not _owns("/policies/", path) and _owns("churn.yaml", path)


def test_fairness_groups_and_metrics() -> None:
    import numpy as np
    from mlops_gitops.core.metrics import fairness_metrics, sensitive_groups

    groups = sensitive_groups([10, 18, 39, 40, 64, 65, 90], [18, 40, 65])
    assert list(groups) == ["<18", "18-39", "18-39", "40-64", "40-64", "65+", "65+"]
    # group a: always predicted 1; group b: never. Parity gap 1, and every error rate differs.
    y = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.1, 0.2])
    found = fairness_metrics(y, scores, {"g": ["a", "a", "b", "b"]}, {"g": None})
    assert found == {
        "fairness.g.demographic_parity_difference": 1.0,
        "fairness.g.equalized_odds_difference": 1.0,
    }
    fair = fairness_metrics(y, np.array([0.9, 0.1, 0.9, 0.1]), {"g": ["a", "a", "b", "b"]}, {"g": None})
    assert fair["fairness.g.demographic_parity_difference"] == 0.0


def test_policy_controls_name_rows_of_the_controls_table() -> None:
    from mlops_gitops.evidence import same_control as _same_control

    assert _same_control("EU AI Act Art. 15", "EU AI Act", "Art. 15 accuracy, robustness, cybersecurity")
    assert not _same_control("EU AI Act Art. 1", "EU AI Act", "Art. 15 accuracy, robustness, cybersecurity")
    assert _same_control("NIST AI RMF MANAGE", "NIST AI RMF 1.0", "MANAGE")
    assert _same_control("SR 11-7 validation", "SR 11-7", "validation: ongoing monitoring, outcomes analysis")
    assert not _same_control("SR 11-7 validation", "SR 11-7", "development and implementation")


def test_a_zip_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """A pack of a few hundred KB whose card inflates to 400 MB: refused, naming the file, by a
    process whose memory stays far below the bomb's size (each member is hashed as it streams)."""
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        listed = [{"path": "model-card.md", "sha256": "0" * 64, "bytes": 400 << 20}]
        archive.writestr("index.json", json.dumps({"format": "mlops-evidence/v1", "files": listed}))
        with archive.open("model-card.md", "w", force_zip64=True) as card:
            zeros = bytes(8 << 20)
            for _ in range(50):
                card.write(zeros)
    assert bomb.stat().st_size < 1 << 20

    def peak_kib(pack: Path) -> tuple[int, str]:
        """The verifying process's peak memory, and what it said."""
        probe = (
            "import atexit, resource, runpy, sys\n"
            "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "atexit.register(lambda: print('maxrss', peak(), file=sys.stderr))\n"
            f"sys.argv = ['mlops', 'evidence', 'verify', {str(pack)!r}, '--no-anchor']\n"
            "runpy.run_module('mlops_gitops.cli', run_name='__main__')\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=tmp_path,
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        return int(proc.stderr.rsplit("maxrss", 1)[1].split()[0]), proc.stderr

    small = tmp_path / "small.zip"
    with zipfile.ZipFile(small, "w") as archive:
        archive.writestr("index.json", json.dumps({"format": "mlops-evidence/v1", "files": []}))
    baseline, _ = peak_kib(small)  # the command's own imports
    peak, said = peak_kib(bomb)
    assert "model-card.md: over 134217728 bytes decompressed (refused: a zip bomb?)" in said, said
    assert peak - baseline < 64 * 1024, (baseline, peak)  # the bomb is 400 MB; it is read a chunk at a time
