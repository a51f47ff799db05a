"""What must hold of this repository's own content, whatever state its life has brought it to.

Its configuration validates (every model known to the pipeline, every card a template the
evidence pack can fill), its policies pass their own tests with coverage and have METADATA,
its manifests and workflows pass those policies, and its workflows lint, declare permissions,
pin what they use and keep forks off the GPU runners. Nothing here assumes which versions the
manifests ask for, which models exist or what the registry holds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlops_gitops.evidence import controls

from .conftest import ROOT, run_mlops

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def test_the_configuration_is_valid() -> None:
    proc = run_mlops("validate", "--output", "json", cwd=ROOT)
    result = json.loads(proc.stdout)
    assert proc.returncode == 0 and result["valid"], "\n".join(
        f"{p['path']}: {p['field']}: {p['problem']} (expected {p['expected']})" for p in result["problems"]
    )
    models = sorted(p.name for p in (ROOT / "models").iterdir() if p.is_dir())
    assert {f"models/{m}/card.md" for m in models} <= set(result["files"])
    assert "pipelines/params.yaml" in result["files"]


def test_the_policies_pass_their_own_tests_with_coverage() -> None:
    proc = run_mlops("policy", "test", "--min-coverage", "90", "--output", "json", cwd=ROOT)
    result = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr + json.dumps(result.get("failed"))
    assert result["failed"] == [] and result["untested_packages"] == []
    for package in {t["package"] for t in result["tests"]}:  # allowed and denied cases in each
        names = [t["rule"] for t in result["tests"] if t["package"] == package]
        assert any(n.startswith("test_allow") for n in names), package
        assert any(n.startswith("test_deny") for n in names), package


def test_every_policy_has_metadata_naming_its_controls() -> None:
    """The controls a policy names are rows of the evidence pack's controls table
    (scripts/mlops_gitops/evidence/controls.yaml), so its decisions prove them there."""
    for path in sorted((ROOT / "policies").rglob("*.rego")):
        if path.name.endswith("_test.rego"):
            continue
        text = path.read_text()
        block = re.match(r"# METADATA\n((?:#.*\n)+)package ", text)
        assert block, f"{path}: no METADATA block before the package"
        meta = yaml.safe_load("\n".join(line[2:] for line in block.group(1).splitlines()))
        assert meta["title"] and meta["description"], path
        assert meta["custom"]["severity"] in ("low", "medium", "high", "critical"), path
        assert meta["custom"]["controls"], f"{path}: names no controls"
        for control in meta["custom"]["controls"]:  # each names a row of the controls table (data)
            assert any(row.named_by(control) for row in controls.table()), (
                f"{path}: {control!r} names no control"
            )
        assert path.with_name(path.stem + "_test.rego").is_file(), f"{path}: no test file"


def test_only_the_reconcile_workflow_builds_evidence_packs() -> None:
    """Building a pack writes its anchor (its index digest, in the registry): in the workflows,
    only reconcile.yml's job does it; any other job may only verify."""
    builders = set()
    for workflow in WORKFLOWS:
        for job_id, job in (yaml.safe_load(workflow.read_text()).get("jobs") or {}).items():
            for step in job.get("steps") or []:
                script = str(step.get("run") or "")
                if re.search(r"make evidence\b|mlops evidence(?! verify)\b", script):
                    builders.add(f"{workflow.name}:{job_id}")
    assert builders == {"reconcile.yml:reconcile"}, builders


def test_the_manifests_and_workflows_pass_the_policies() -> None:
    proc = run_mlops("check", "--output", "json", cwd=ROOT)
    reports = json.loads(proc.stdout)
    failures = [f"{r['filename']}: {f['msg']}" for r in reports for f in r.get("failures") or []]
    assert proc.returncode == 0 and not failures, "\n".join(failures) or proc.stderr
    judged = {(r["filename"], r["namespace"]) for r in reports}
    manifests = {p.relative_to(ROOT).as_posix() for p in (ROOT / "environments").glob("*/*.yaml")}
    assert {name for name, ns in judged if ns == "manifests"} == manifests
    assert {name for name, ns in judged if ns == "workflows"} == {
        p.relative_to(ROOT).as_posix() for p in WORKFLOWS
    }


def test_actionlint_passes_on_every_workflow() -> None:
    actionlint = Path(sys.executable).parent / "actionlint"
    proc = subprocess.run([str(actionlint), *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_declare_permissions_and_pin_what_they_use(workflow: Path) -> None:
    doc = yaml.safe_load(workflow.read_text())
    assert "permissions" in doc, f"{workflow.name}: no top-level permissions"
    for job_id, job in doc["jobs"].items():
        for step in job.get("steps", []):
            uses = step.get("uses", "")
            if uses and not uses.startswith("./"):
                assert SHA_PINNED.match(uses), (
                    f"{workflow.name}: {job_id}: {uses} is not pinned by commit SHA"
                )


# The first major of each of GitHub's own actions that runs on Node 24: GitHub moved its runners to
# Node 24 in June 2026 and removes Node 20 (each action.yml's `runs.using`, read at these tags).
NODE24_MAJOR = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/cache": 5,
    "actions/upload-artifact": 6,
    "actions/download-artifact": 7,
}
PIN_COMMENT = re.compile(r"uses: (?P<action>[\w.-]+/[\w.-]+)@[0-9a-f]{40} # v(?P<major>\d+)\.\d+\.\d+\s*$")


def test_github_actions_run_on_node_24_and_say_which_release_they_pin() -> None:
    files = [*WORKFLOWS, *sorted((ROOT / ".github" / "actions").rglob("action.yml"))]
    seen = set()
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "uses: " not in line or "uses: ./" in line:
                continue
            pinned = PIN_COMMENT.search(line)
            assert pinned, f"{path.name}:{number}: {line.strip()} (expected owner/repo@<sha> # vX.Y.Z)"
            action, major = pinned["action"], int(pinned["major"])
            if action in NODE24_MAJOR:
                seen.add(action)
                assert major >= NODE24_MAJOR[action], (
                    f"{path.name}:{number}: {action} v{major} runs on Node 20"
                )
    assert seen, "no action of GitHub's found"


def test_fork_pull_requests_never_reach_the_gpu_runners() -> None:
    doc = yaml.safe_load((ROOT / ".github/workflows/train.yml").read_text())
    triggers = doc[True] if True in doc else doc["on"]  # PyYAML reads the key `on` as True
    assert "pull_request" not in triggers and "pull_request_target" not in triggers
    guard = doc["jobs"]["train"]["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in guard
    assert doc["jobs"]["train"]["runs-on"] == "${{ fromJSON(needs.config.outputs.gpu_labels) }}"


def test_zizmor_finds_nothing_in_the_workflows() -> None:
    """The third-party audit, offline and with its default settings: no finding (the few
    suppressions are inline, each with its reason)."""
    zizmor = Path(sys.executable).parent / "zizmor"
    proc = subprocess.run(
        [str(zizmor), "--offline", "--format", "json", ".github/workflows", ".github/actions"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    findings = json.loads(proc.stdout or "[]")
    assert proc.returncode == 0 and findings == [], [
        (f["ident"], f["locations"][0]["symbolic"]["key"]) for f in findings
    ]


def _as_conftest_reads(workflow: Path) -> object:
    """The workflow as conftest's YAML parser gives it to the policies: YAML 1.1, so the key
    `on` is the boolean true, which becomes "true" in the JSON input."""
    return json.loads(json.dumps(yaml.safe_load(workflow.read_text())))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_the_workflow_policies_judge_alike_whichever_parser_reads_them(
    workflow: Path, tmp_path: Path
) -> None:
    from mlops_gitops.core import yamlio

    shapes = {
        "yaml12": yamlio.loads_data(workflow.read_text(), workflow.name),
        "conftest": _as_conftest_reads(workflow),
    }
    assert "true" in shapes["conftest"] and "on" not in shapes["conftest"]  # the shape conftest sees
    verdicts = {}
    for shape, document in shapes.items():
        # the same workflow, made to fail: no permissions, an action by tag, a GPU job open to forks
        broken = json.loads(json.dumps(document))
        broken.pop("permissions", None)
        for job in broken["jobs"].values():
            job.pop("permissions", None)
        broken["jobs"]["bypass"] = {
            "runs-on": ["self-hosted", "gpu"],
            "if": "${{ true || github.event.pull_request.head.repo.full_name == github.repository }}",
            "steps": [{"uses": "actions/checkout@v4"}],
        }
        key = "true" if shape == "conftest" else "on"
        broken[key] = {"pull_request": {}}
        for name, doc in (("as-is", document), ("broken", broken)):
            path = tmp_path / f"{shape}-{name}.json"
            path.write_text(json.dumps(doc))
            check = ["check", str(path), "-n", "workflows", "--data", "mlops.yaml", "-o", "json"]
            proc = run_mlops(*check, cwd=ROOT)  # as conftest with --data mlops.yaml: runners.hosted
            (report,) = json.loads(proc.stdout)
            verdicts[shape, name] = sorted(f["msg"] for f in report.get("failures") or [])
    assert verdicts["yaml12", "as-is"] == verdicts["conftest", "as-is"] == []
    assert verdicts["yaml12", "broken"] == verdicts["conftest", "broken"]
    rules = " ".join(verdicts["conftest", "broken"])
    for expected in ("has no permissions", "uses actions/checkout@v4", "without refusing forks"):
        assert expected in rules, verdicts["conftest", "broken"]
