"""A team's life on three machines that share only what a team shares: one bare git remote, the
team's registry (PostgreSQL, MLflow with authentication: test_team_registry's), one S3 bucket
for the DVC remote and the registry's artifacts (moto's server, standing in for S3), and GitHub's
pull requests (a `gh` script on each PATH, which cannot reach GitHub from here).

Three clones of the remote: the GPU runner, GitHub's hosted runner, the deploy host, each with
its own working tree and `.mlops/`. Each workflow runs under act on its own clone, with its
role's credentials passed as GitHub passes them (repository variables and secrets):

- `train.yml` on the GPU runner trains, sends the data to the DVC remote, registers and opens the
  promotion's pull request (its branch pushed to the remote);
- `pr.yml`'s gate on the hosted runner, which never trained, judges it from the registry;
- the merge is made (on the remote, as GitHub merges);
- `reconcile.yml` on the deploy host deploys it; clients' traffic reaches it there;
- `drift.yml` on the deploy host reads the deploy host's logs against the training data it
  fetches from the DVC remote.

No machine reads another's files, and no verb falls back to a local sqlite registry. The time of
each machine's part is printed (`-s`), for the closing note.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ..conftest import base_env, git_commit_all, run_mlops
from .conftest import EVENTS
from .helpers import git
from .test_team_registry import BUCKET, Team, local_state, start_team
from .workflows import run_act, sandbox

pytestmark = [pytest.mark.slow, pytest.mark.act]
FAKE_GH = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/gh.log"
[ "$1 $2" = "auth status" ] && exit 0
[ "$1 $2" = "pr create" ] && echo "https://github.com/acme/models/pull/1" && exit 0
exit 1
"""
S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def act_as(
    team: Team, role: str, machine: Path, *args: str, fake: Path, secrets: dict[str, str] | None = None
) -> tuple[dict[str, Any], str]:
    """A workflow under act on `machine`, with the role's registry user and the store's keys as
    GitHub gives them: variables with --var, secrets with --secret (values from the environment)."""
    upper = role.upper()
    endpoint = team.env["MLFLOW_S3_ENDPOINT_URL"]
    env = {
        f"MLFLOW_{upper}_PASSWORD": team.secrets["roles"][role],
        **(secrets or {}),
        **S3_KEYS,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": f"{fake}:{base_env()['PATH']}",
        "MLOPS_STATE_DIR": "",  # each machine's own state: set per workflow below
    }
    options = [
        "--var", f"MLFLOW_TRACKING_URI={team.url}",
        "--var", f"MLFLOW_{upper}_USERNAME={role}",
        "--secret", f"MLFLOW_{upper}_PASSWORD",
        "--secret", "AWS_ACCESS_KEY_ID",
        "--secret", "AWS_SECRET_ACCESS_KEY",
        "--var", f"AWS_ENDPOINT_URL={endpoint}",
        "--var", f"MLOPS_STATE_DIR={machine / '.mlops'}",
        *(f"--secret={name}" for name in secrets or {}),
    ]  # fmt: skip
    results, log = run_act(machine, *args, *options, env=env)
    (machine.parent / f"{machine.name}-{args[1].rsplit('/', 1)[-1]}.log").write_text(log)
    return results, log


def timed(parts: dict[str, float], name: str, start: float) -> None:
    parts[name] = round(time.monotonic() - start, 1)


def test_a_life_on_three_machines_that_share_only_the_remote_the_registry_and_the_store(
    tmp_path: Path,
) -> None:
    parts: dict[str, float] = {}
    seed = sandbox(tmp_path / "seed")
    # The team's DVC remote: the bucket (the endpoint reaches DVC through AWS_ENDPOINT_URL).
    dvc = str(Path(sys.executable).parent / "dvc")
    remote = [dvc, "remote", "add", "-f", "-d", "team", f"s3://{BUCKET}/dvc"]
    subprocess.run(remote, cwd=seed, check=True, env=base_env(), capture_output=True)
    # As the README's day-to-day has it, the pipeline's lock is committed with the change that
    # moved it (a developer's `make train`): the GPU runner's retraining then reproduces it, and
    # the version it registers has a clean lineage.
    train = subprocess.run(["make", "-s", "train"], cwd=seed, env={**base_env(), "VENV": sys.prefix},
                           capture_output=True, text=True)  # fmt: skip
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    # The team's signing key, made once on a developer's machine: its public half committed, its
    # private half the repository's secret MLOPS_SIGNING_KEY (what train.yml signs with under act);
    # staging then serves signed versions only.
    key = json.loads(run_mlops("keys", "init", "-o", "json", cwd=seed, check=True).stdout)
    project = seed / "mlops.yaml"
    project.write_text(
        project.read_text().replace("    # require_signature: true\n", "    require_signature: true\n", 1)
    )
    git_commit_all(seed, "The team's DVC remote, signing key and the pipeline's lock")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(seed), str(origin)], check=True)
    machines = {}
    for name in ("gpu-runner", "hosted-runner", "deploy-host"):
        machines[name] = tmp_path / name
        subprocess.run(["git", "clone", "--quiet", str(origin), str(machines[name])], check=True)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gh").write_text(FAKE_GH)
    (fake / "gh").chmod(0o755)

    start = time.monotonic()
    found = start_team(tmp_path, seed)
    team = next(found)
    timed(parts, "registry up", start)
    gpu, hosted, deploy = machines["gpu-runner"], machines["hosted-runner"], machines["deploy-host"]
    try:
        # 1. The GPU runner: train.yml trains, pushes the data, registers, opens the promotion.
        start = time.monotonic()
        signing_key = {"MLOPS_SIGNING_KEY": Path(key["private"]).read_text()}
        results, log = act_as(team, "trainer", gpu, "workflow_dispatch", ".github/workflows/train.yml",
                              EVENTS / "workflow_dispatch.json", fake=fake, secrets=signing_key)  # fmt: skip
        timed(parts, "gpu runner: train.yml", start)
        assert results == {"config": "success", "train": "success"}, log
        assert f"registry {team.url}" in log
        assert key["fingerprint"][:40] in log  # `make register`'s table: signed by the team's key
        assert "skipped under act" in log  # GitHub's artifact attestation: not here, and said so
        pulled = (fake / "gh.log").read_text()
        assert "pr create --base main --head promote/churn-staging-v1" in pulled, log
        assert git(gpu, "ls-remote", "origin", "promote/churn-staging-v1")
        dvc_keys = team.s3.list_objects_v2(Bucket=BUCKET, Prefix="dvc/").get("KeyCount", 0)
        assert dvc_keys > 0  # the pipeline's data is on the remote, for the other machines

        # 2. GitHub's hosted runner, which never trained: pr.yml's gate judges the promotion.
        start = time.monotonic()
        git(hosted, "fetch", "--quiet", "origin")
        git(hosted, "switch", "--quiet", "promote/churn-staging-v1")
        results, log = act_as(team, "gate", hosted, "pull_request", ".github/workflows/pr.yml",
                              EVENTS / "pull_request.json", "-j", "policy", fake=fake)  # fmt: skip
        timed(parts, "hosted runner: pr.yml's gate", start)
        assert results["policy"] == "success", log
        assert "### Policy gate: ✅ **allowed**" in log or "allowed with warnings" in log, log
        assert "1 document(s) checked: 0 failure(s)" in log  # the promotion's facts, judged

        # 3. The merge, on the remote, as GitHub makes it.
        git(hosted, "switch", "--quiet", "main")
        git(hosted, "merge", "--quiet", "--no-ff", "-m", "Merge pull request #1", "promote/churn-staging-v1")
        git(hosted, "push", "--quiet", "origin", "main")

        # 4. The deploy host: reconcile.yml deploys what main asks; clients reach it there.
        start = time.monotonic()
        git(deploy, "pull", "--quiet", "--ff-only")
        reconcile = ".github/workflows/reconcile.yml"
        results, log = act_as(team, "reconciler", deploy, "workflow_dispatch", reconcile,
                              EVENTS / "workflow_dispatch.json", fake=fake)  # fmt: skip
        timed(parts, "deploy host: reconcile.yml", start)
        assert results["config"] == "success" and results["reconcile"] == "success", log
        here = {**team.role("reconciler"), "MLOPS_STATE_DIR": str(deploy / ".mlops")}
        status = json.loads(run_mlops("status", "-o", "json", cwd=deploy, env_extra=here).stdout)
        assert {d["environment"]: d["serving"] for d in status["deployments"]}["staging"] == "v1"
        rows = tmp_path / "clients.csv"
        rows.write_text(_rows(seed))
        sent = run_mlops("predict", "churn", "--env", "staging", "--input", str(rows), "-o", "json",
                         cwd=deploy, env_extra=here)  # fmt: skip
        assert sent.returncode == 0, sent.stderr

        # 5. drift.yml on the deploy host: its logs against the training data from the DVC remote.
        start = time.monotonic()
        results, log = act_as(team, "reconciler", deploy, "workflow_dispatch", ".github/workflows/drift.yml",
                              EVENTS / "workflow_dispatch.json", fake=fake)  # fmt: skip
        timed(parts, "deploy host: drift.yml", start)
        assert results.get("drift") == "success", log
        # the deploy host's 200 logged rows, against the 4,500 training rows it fetched from the
        # DVC remote (it never trained: only the GPU runner's push put them there)
        assert "churn v1 in staging: no-drift - 200 rows logged" in log, log
        assert "200 logged rows against 4500 training rows" in log
    finally:
        stop = {**team.role("reconciler"), "MLOPS_STATE_DIR": str(deploy / ".mlops")}
        run_mlops("down", cwd=deploy, env_extra=stop)
        found.close()
    # What each machine holds is its own: no registry file anywhere, servers only on the deploy host.
    for name, machine in machines.items():
        assert local_state(machine) == [], name
    assert not (hosted / ".mlops" / "servers").exists() and not (gpu / ".mlops" / "servers").exists()
    assert (deploy / ".mlops" / "records" / "staging" / "churn.jsonl").is_file()
    print(json.dumps(parts))


def _rows(seed: Path) -> str:
    """Rows a client sends: the pipeline's own synthetic customers (made here, not read from
    another machine)."""
    sys.path.insert(0, str(seed / "pipelines" / "stages"))
    from churn_data import TARGET, make_customers

    frame = make_customers(200, 11, 0.0).drop(columns=[TARGET])
    return str(frame.to_csv(index=False))
