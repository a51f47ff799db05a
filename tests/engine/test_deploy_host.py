"""Where the reconciler runs: the deploy host's runner (reconcile.yml and drift.yml on the labels
in mlops.yaml), and the pull-based kit under scripts/deploy-host/ (a systemd service running
`mlops reconcile --watch` with its health and metrics endpoint).

systemd cannot run here: `systemctl`, `useradd`, `chown` and `runuser` are replaced by small
scripts that record how they were called (runuser runs the command it is given). The unit
file is checked by the real `systemd-analyze verify`, and its command line is run for real
against a real repository, registry and git remote.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT, base_env, git_commit_all, run_mlops
from .mlflow_server import free_port

HOST = ROOT / "scripts" / "deploy-host"


def test_ci_config_sends_reconcile_and_drift_where_the_deployments_live() -> None:
    from mlops_gitops.ciconfig import lines

    config = yaml.safe_load((ROOT / "mlops.yaml").read_text())
    local = dict(line.split("=", 1) for line in lines({**config, "deploy": {"target": "local"}}))
    assert json.loads(local["deploy_labels"]) == config["runners"]["deploy"]
    assert json.loads(local["watch_labels"]) == config["runners"]["deploy"]
    kserve = dict(line.split("=", 1) for line in lines({**config, "deploy": {"target": "kserve"}}))
    assert json.loads(kserve["deploy_labels"]) == ["ubuntu-latest"]  # kubectl or Argo CD: no host
    assert json.loads(kserve["watch_labels"]) == config["runners"]["deploy"]  # the logs are there
    reconcile = yaml.safe_load((ROOT / ".github/workflows/reconcile.yml").read_text())
    job = reconcile["jobs"]["reconcile"]
    assert job["runs-on"] == "${{ fromJSON(needs.config.outputs.deploy_labels) }}"
    assert "deploy_labels" in reconcile["jobs"]["config"]["outputs"]
    kube = next(s for s in job["steps"] if s.get("run") == "make -s kubeconfig")
    assert kube["env"] == {"KUBECONFIG_DATA": "${{ secrets.KUBECONFIG }}"}  # never inside run:
    assert (local["hydrate"], kserve["hydrate"]) == ("false", "true")  # Argo CD syncs a branch
    applied = {**config, "deploy": {"target": "kserve", "kserve": {"kube_context": "prod"}}}
    assert dict(line.split("=", 1) for line in lines(applied))["hydrate"] == "false"  # kubectl applies
    publish = reconcile["jobs"]["publish"]
    assert publish["needs"] == ["config", "reconcile"] and publish["permissions"] == {"contents": "write"}
    assert "needs.config.outputs.hydrate == 'true'" in publish["if"]
    assert publish["steps"][-1]["run"] == 'make hydrate FROM="$FROM"'
    assert reconcile["permissions"] == {"contents": "read"}  # only the publishing job writes
    drift = yaml.safe_load((ROOT / ".github/workflows/drift.yml").read_text())
    assert drift["jobs"]["drift"]["runs-on"] == "${{ fromJSON(needs.config.outputs.watch_labels) }}"
    triggers = reconcile[True] if True in reconcile else reconcile["on"]
    assert "pull_request" not in triggers and "pull_request_target" not in triggers  # no fork reaches it


def test_kubeconfig_target_writes_a_private_file_and_prints_no_secret(tmp_path: Path) -> None:
    secret = "apiVersion: v1\nkind: Config\nusers: [{name: ci, user: {token: s3cr3t-token}}]"
    github_env = tmp_path / "github_env"
    env = {
        **base_env(),
        "KUBECONFIG_DATA": secret,
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_ENV": str(github_env),
    }
    proc = subprocess.run(["make", "-s", "kubeconfig"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    written = tmp_path / "kubeconfig"
    assert written.read_text() == secret + "\n" and (written.stat().st_mode & 0o777) == 0o600
    assert github_env.read_text() == f"KUBECONFIG={written}\n"
    assert "s3cr3t" not in proc.stdout + proc.stderr
    env.pop("KUBECONFIG_DATA")
    skipped = subprocess.run(["make", "-s", "kubeconfig"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert skipped.returncode == 0 and "no kubeconfig secret" in skipped.stdout


def test_register_runner_registers_the_deploy_host_with_its_labels(tmp_path: Path) -> None:
    runner_dir, calls = tmp_path / "actions-runner", tmp_path / "calls"
    runner_dir.mkdir()
    (runner_dir / "config.sh").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (runner_dir / "config.sh").chmod(0o755)
    env = {
        "PATH": os.pathsep.join(
            p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "nvidia-smi").exists()
        ),
        "GITHUB_URL": "https://github.com/acme/models",
        "RUNNER_TOKEN": "AAAA",
        "RUNNER_ROLE": "deploy",
    }
    script = ROOT / "scripts/runners/register-runner.sh"
    proc = subprocess.run([str(script), str(runner_dir)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # no GPU needed
    args = calls.read_text().split()
    labels = [
        x
        for x in yaml.safe_load((ROOT / "mlops.yaml").read_text())["runners"]["deploy"]
        if x != "self-hosted"
    ]
    assert args[args.index("--labels") + 1] == ",".join(labels) and args[args.index("--name") + 1].endswith(
        "-deploy"
    )
    bad = subprocess.run(
        [str(script), str(runner_dir)], env={**env, "RUNNER_ROLE": "web"}, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "RUNNER_ROLE=web (expected gpu or deploy)" in bad.stderr


def stubs(tmp_path: Path) -> tuple[Path, Path]:
    """systemctl, useradd, id, chown record their calls; runuser runs its command."""
    bin_dir, calls = tmp_path / "stub-bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    for name, body in {
        "systemctl": f'echo "systemctl $*" >> {calls}\n',
        "useradd": f'echo "useradd $*" >> {calls}\ntouch {tmp_path}/user-made\n',
        "id": f"[ -e {tmp_path}/user-made ]\n",
        "chown": f'echo "chown $*" >> {calls}\n',
        "runuser": f'echo "runuser $*" >> {calls}\nshift 3\nexec "$@"\n',
    }.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    return bin_dir, calls


def checkout(tmp_path: Path) -> Path:
    """A clone of a generated repository with its remote, and the tool set in place."""
    from .workflows import sandbox

    origin = sandbox(tmp_path / "origin")
    repo = tmp_path / "opt" / "repo"
    subprocess.run(["git", "clone", "--quiet", str(origin), str(repo)], check=True)
    (repo / ".venv").symlink_to(ROOT / ".venv")  # `make install` finds it installed (same stamp)
    return repo


def install(repo: Path, tmp_path: Path, bin_dir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **extra,
        **base_env(),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SYSTEMD_DIR": str(tmp_path / "systemd"),
        "ETC_DIR": str(tmp_path / "etc"),
        "STATE_DIR": str(tmp_path / "state"),
    }
    (tmp_path / "systemd").mkdir(exist_ok=True)
    return subprocess.run(
        [str(HOST / "install.sh"), str(repo)], env=env, capture_output=True, text=True, timeout=300
    )


def test_install_sh_installs_the_service_and_a_rerun_converges(tmp_path: Path) -> None:
    bin_dir, calls = stubs(tmp_path)
    repo = checkout(tmp_path)
    proc = install(repo, tmp_path, bin_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    unit = (tmp_path / "systemd/mlops-reconcile.service").read_text()
    assert "@" not in unit.replace("multi-user", "")  # every placeholder filled
    assert f"WorkingDirectory={repo}" in unit and f"EnvironmentFile={tmp_path / 'etc/reconcile.env'}" in unit
    assert f"ReadWritePaths={repo} {tmp_path / 'state'}" in unit
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "systemd/mlops-reconcile.service")],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr
    env_file = tmp_path / "etc/reconcile.env"
    assert (env_file.stat().st_mode & 0o777) == 0o600
    assert f"MLOPS_STATE_DIR={tmp_path / 'state'}" in env_file.read_text()
    made = calls.read_text()
    assert "useradd --system" in made and f"runuser -u mlops -- make -C {repo} -s install" in made
    assert "systemctl daemon-reload" in made and "systemctl enable --now mlops-reconcile.service" in made
    env_file.write_text(env_file.read_text() + "MLFLOW_TRACKING_TOKEN=kept\n")  # the admin's edits
    again = install(repo, tmp_path, bin_dir)
    assert again.returncode == 0, again.stderr
    assert "MLFLOW_TRACKING_TOKEN=kept" in env_file.read_text()  # never overwritten
    assert calls.read_text().count("useradd") == 1  # the user exists now
    assert not (tmp_path / "systemd/mlops-webhook.service").exists()  # asked for, below

    # The webhook receiver: installed, but started only once its secret is set.
    hooked = install(repo, tmp_path, bin_dir, WITH_WEBHOOK="1")
    assert hooked.returncode == 0 and "not started: set MLOPS_WEBHOOK_SECRET" in hooked.stdout
    hook_unit = tmp_path / "systemd/mlops-webhook.service"
    assert "@" not in hook_unit.read_text().replace("multi-user", "")
    verify = subprocess.run(["systemd-analyze", "verify", str(hook_unit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    hook_env = tmp_path / "etc/webhook.env"
    assert (hook_env.stat().st_mode & 0o777) == 0o600
    assert "enable --now mlops-webhook" not in calls.read_text()
    hook_env.write_text(
        hook_env.read_text().replace("MLOPS_WEBHOOK_SECRET=\n", "MLOPS_WEBHOOK_SECRET=" + "s" * 32 + "\n")
    )
    assert install(repo, tmp_path, bin_dir, WITH_WEBHOOK="1").returncode == 0
    assert "systemctl enable --now mlops-webhook.service" in calls.read_text()


def test_install_sh_refuses_what_is_not_a_checkout_with_one_line(tmp_path: Path) -> None:
    bin_dir, calls = stubs(tmp_path)
    (tmp_path / "empty").mkdir()
    for target, message in (
        (tmp_path / "nowhere", "no such directory"),
        (tmp_path / "empty", "no mlops.yaml"),
    ):
        proc = install(target, tmp_path, bin_dir)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    from .workflows import sandbox

    lonely = sandbox(tmp_path / "lonely")  # a repository nobody can pull from
    proc = install(lonely, tmp_path, bin_dir)
    assert proc.returncode == 2 and "no remote origin" in proc.stderr
    assert not calls.exists()  # nothing was changed


@pytest.mark.slow
def test_the_services_command_reconciles_what_is_pushed_and_reports_health(
    registered: Path, tmp_path: Path
) -> None:
    """The unit's ExecStart, with its environment file, run for real: it pulls the remote,
    deploys what a pushed commit promotes, and answers /healthz and /metrics."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(registered), str(origin)], check=True)
    repo = tmp_path / "repo"
    shutil.copytree(registered, repo, symlinks=True)
    subprocess.run(["git", "remote", "add", "origin", str(origin)], cwd=repo, check=True)
    subprocess.run(["git", "fetch", "--quiet", "origin"], cwd=repo, check=True)
    subprocess.run(["git", "branch", "--quiet", "-u", "origin/main"], cwd=repo, check=True)
    (repo / ".venv").symlink_to(ROOT / ".venv")
    port = free_port()
    values = dict(
        line.split("=", 1)
        for line in (HOST / "reconcile.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    values.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{repo / 'mlflow.db'}",
        MLOPS_STATE_DIR=str(tmp_path / "state"),
        MLOPS_INTERVAL="1",
        MLOPS_HEALTH_PORT=str(port),
    )
    unit = (HOST / "mlops-reconcile.service").read_text().replace("@REPO@", str(repo))
    command = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)  # type: ignore[union-attr]
    argv = [re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], word) for word in shlex.split(command)]
    log = (tmp_path / "service.log").open("w")
    proc = subprocess.Popen(
        argv, cwd=repo, env={**base_env(), **values}, stdout=log, stderr=subprocess.STDOUT
    )
    health = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{health}/healthz", timeout=2) as answer:
                    body = json.loads(answer.read())
                    if body["rounds"] >= 1:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "service.log").read_text()
            time.sleep(0.5)
        assert body["status"] == "ok"
        # a promotion lands on main (pushed by someone else): the service deploys it
        work = tmp_path / "work"
        subprocess.run(["git", "clone", "--quiet", str(origin), str(work)], check=True)
        manifest = work / "environments/staging/churn.yaml"
        manifest.write_text(manifest.read_text().replace("version: null", "version: 1"))
        git_commit_all(work, "Promote churn v1 to staging")
        subprocess.run(["git", "push", "--quiet", "origin", "HEAD:main"], cwd=work, check=True)
        records = tmp_path / "state/records/staging/churn.jsonl"
        deadline = time.monotonic() + 120
        while not (records.exists() and '"result": "healthy"' in records.read_text().replace('":"', '": "')):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "service.log").read_text()
            time.sleep(0.5)
        # the round that deployed is counted when it ends, a moment after its record is written
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen(f"{health}/metrics", timeout=5) as answer:
                metrics = answer.read().decode()
            rounds = int(re.search(r"^mlops_reconcile_rounds_total (\d+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
            if rounds >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert rounds >= 2 and "mlops_reconcile_last_round_ok 1" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        run_mlops("down", cwd=repo, env_extra={"MLOPS_STATE_DIR": str(tmp_path / "state")})
