"""Every runbook in docs/runbooks/ runs: its commands, exactly as written and in order, in one
shell, on a generated repository brought to the state the runbook starts from (real model
servers, registry, git and, for the template update, cruft). A command's expected exit code
is the `# exits N` on its line, else 0; any other code fails the test, naming the line."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..conftest import ROOT, base_env, copy_files, git_commit_all, git_files, run_mlops
from .helpers import merge_pull_request

pytestmark = pytest.mark.slow

RUNBOOKS = ROOT / "docs" / "runbooks"
EXITS = re.compile(r"\s+#\s*exits (\d+)\b.*$")


def commands(runbook: Path) -> list[tuple[str, int]]:
    """(command, expected exit code) of every ```sh block, in order."""
    found = []
    for block in re.findall(r"^ *```sh\n(.*?)^ *```", runbook.read_text(), flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            expected = EXITS.search(line)
            found.append((EXITS.sub("", line), int(expected.group(1)) if expected else 0))
    return found


def script(runbook: Path) -> str:
    lines = []
    for number, (command, expected) in enumerate(commands(runbook), 1):
        said = shlex.quote(f"{runbook.name} command {number} (expected exit {expected}): {command}")
        lines += [
            command,
            f'rc=$?; if [ "$rc" -ne {expected} ]; then echo "exit $rc:" {said} >&2; exit 97; fi',
        ]
    return "\n".join(lines) + "\n"


def run_runbook(name: str, repo: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The runbook's commands in one shell, `mlops` among them the real CLI forked from the tests'
    fork server (its shim first on PATH), the rest of this environment's tools after it."""
    from .. import forkserver

    environment = {**base_env(), **(env or {})}
    environment["PATH"] = f"{Path(sys.executable).parent}:{environment['PATH']}"
    if forkserver.enabled():
        shim = forkserver.shim(repo.parent / "shim-bin", base_env())
        environment["PATH"] = f"{shim}:{environment['PATH']}"
    return subprocess.run(
        ["bash", "-c", script(RUNBOOKS / name)], cwd=repo, env=environment, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def reconcile(repo: Path, expected: int = 0) -> None:
    proc = run_mlops("reconcile", "--env", "production", cwd=repo)
    assert proc.returncode == expected, proc.stdout + proc.stderr


def training_data(repo: Path) -> None:
    """The pipeline's training file in the workspace, as `make train` leaves it, and the
    versions' lineage naming its md5 (where `mlops drift` finds its reference)."""
    from churn_data import make_customers

    from .registered import registry_of

    path = repo / "pipelines/data/churn/raw.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    make_customers(400, 7, 0.0).to_csv(path, index=False)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    registry = registry_of(repo)
    for version in (1, 2, 5):
        registry.set_tags("churn", version, {"mlops.data": json.dumps({"pipelines/data/churn/raw.csv": md5})})


def lived_in(repo: Path) -> dict[str, str]:
    """Production: v1 by pull request #7, then v5 (its predictions shifted) by #8, then traffic
    whose inputs have moved, with its ground truth in labels.csv."""
    from churn_data import make_customers

    training_data(repo)
    merge_pull_request(repo, 7, "production", version=1)
    reconcile(repo)
    first = json.loads((repo / ".mlops/records/production/churn.jsonl").read_text().splitlines()[-1])["at"]
    time.sleep(2)
    merge_pull_request(repo, 8, "production", version=5)
    reconcile(repo)
    data = repo.parent / "traffic.csv"
    make_customers(300, 21, 1.0).drop(columns=["customer_id"]).to_csv(data, index=False)
    sent = run_mlops(
        "predict", "churn", "--env", "production", "--input", str(data), "--batch-size", "10",
        "--labels-out", str(repo / "labels.csv"), cwd=repo,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    return {"AT": first}  # the moment the auditor asks about: inside v1's stretch


def failed_rollout(repo: Path) -> dict[str, str]:
    """Production: v1, then v5 under an analysed canary that its class shift rolled back."""
    from .helpers import url_of
    from .test_rollout import rows, send

    merge_pull_request(repo, 7, "production", version=1)
    reconcile(repo)
    rollout = {
        "steps": [20, 50],
        "interval": 1,
        "threshold": 1,
        "checks": {"min_requests": 20, "max_class_shift": 0.15},
    }
    merge_pull_request(repo, 8, "production", version=5, rollout=rollout)
    reconcile(repo)  # the canary starts at 20%
    send(url_of(repo, "production"), rows(200))
    time.sleep(1.1)
    reconcile(repo, expected=1)  # rolled back by the analysis
    return {}


def bad_version_serving(repo: Path) -> dict[str, str]:
    """Production: v1, then v2 by pull request; a remote to push the break-glass branch to."""
    origin = repo.parent / "origin.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(origin)], check=True)
    subprocess.run(["git", "remote", "add", "origin", str(origin)], cwd=repo, check=True)
    merge_pull_request(repo, 7, "production", version=1)
    reconcile(repo)
    merge_pull_request(repo, 8, "production", version=2)
    reconcile(repo)
    return {}


def registry_away(repo: Path) -> dict[str, str]:
    lived_in(repo)
    return {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}


STATES: dict[str, Callable[[Path], dict[str, str]]] = {
    "model-degraded.md": lived_in,
    "rollout-failed.md": failed_rollout,
    "emergency-rollback.md": bad_version_serving,
    "registry-down.md": registry_away,
    "auditor-question.md": lived_in,
}


@pytest.fixture
def repo(canaried: Path, tmp_path: Path) -> Iterator[Path]:
    dest = tmp_path / "repo"
    shutil.copytree(canaried, dest, symlinks=True)
    yield dest
    run_mlops("down", cwd=dest)


def test_every_runbook_is_listed_and_has_a_starting_state() -> None:
    found = sorted(p.name for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
    assert found == sorted([*STATES, "template-update.md"])
    index = (RUNBOOKS / "README.md").read_text()
    assert all(f"({name})" in index for name in found)
    assert all(commands(RUNBOOKS / name) for name in found)  # each has commands to run


@pytest.mark.parametrize("name", sorted(STATES))
def test_runbook_runs(name: str, repo: Path) -> None:
    extra = STATES[name](repo)
    proc = run_runbook(name, repo, extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check_outcome(name, repo, proc)


def served_versions(repo: Path) -> list[int]:
    import urllib.request

    server = json.loads((repo / ".mlops/servers/production/churn.json").read_text())
    with urllib.request.urlopen(f"http://{server['host']}:{server['port']}/health", timeout=10) as answer:
        return list(json.loads(answer.read())["versions"])


def check_outcome(name: str, repo: Path, proc: subprocess.CompletedProcess[str]) -> None:
    """What the runbook was for did happen."""
    records = [
        json.loads(line) for line in (repo / ".mlops/records/production/churn.jsonl").read_text().splitlines()
    ]
    serving = [r for r in records if r.get("kind", "deployment") == "deployment"][-1]
    if name in ("model-degraded.md", "rollout-failed.md"):
        assert serving["version"] == 1  # the revert, merged and applied (the rollout had put v1 back already)
        assert serving["result"] == ("healthy" if name == "model-degraded.md" else "rolled-back")
        manifest = (repo / "environments/production/churn.yaml").read_text()
        assert re.search(r"^version: 1$", manifest, re.M)
    if name == "emergency-rollback.md":
        assert serving["result"] == "break-glass" and "INC-1234" in serving["reason"]
        held = [r for r in records if r.get("kind") == "hold"]
        assert [h["action"] for h in held] == ["placed"] and "INC-1234" in held[0]["reason"]
        # main still asks for the bad version: reconcile from main, and a --watch round, keep v1
        assert (
            subprocess.run(
                ["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=repo, capture_output=True, text=True
            ).stdout.strip()
            == "main"
        )
        for more in ([], ["--watch", "--interval", "0.2", "--iterations", "2"]):
            assert run_mlops("reconcile", "--env", "production", *more, cwd=repo).returncode == 0
            assert served_versions(repo) == [1]
        assert (repo / "evidence-break-glass.zip").is_file()
        pushed = subprocess.run(
            ["git", "ls-remote", "origin"], cwd=repo, capture_output=True, text=True
        ).stdout
        assert "refs/heads/rollback/churn-production-v1" in pushed
    if name == "registry-down.md":
        assert serving["version"] == 5  # nothing changed while the registry was away
        assert "registry http://127.0.0.1:9" in proc.stderr
    if name == "auditor-question.md":
        assert (repo / "evidence-churn-v1.zip").is_file() and "#7" in proc.stdout


def test_template_update_runbook_runs(tmp_path: Path) -> None:
    """A repository made with cruft from a template snapshot; the template moves on; the runbook."""
    template = tmp_path / "template"
    copy_files(git_files(), ROOT, template)
    git_commit_all(template, "template snapshot")
    bin_dir = Path(sys.executable).parent
    made = subprocess.run(
        [str(bin_dir / "cruft"), "create", str(template), "--no-input"], cwd=tmp_path, env=base_env(),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    (project,) = [p for p in tmp_path.iterdir() if p.is_dir() and p != template]
    policy_readme = template / "policies/README.md"
    policy_readme.write_text(policy_readme.read_text() + "\nAdded upstream.\n")
    git_commit_all(template, "Upstream change")
    proc = run_runbook("template-update.md", project)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (project / "policies/README.md").read_text().endswith("\nAdded upstream.\n")
    log = subprocess.run(["git", "log", "-1", "--format=%s"], cwd=project, capture_output=True, text=True)
    assert log.stdout.strip() == "Update from the template"
