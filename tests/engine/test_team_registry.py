"""The team's registry, for real: PostgreSQL (Debian's binaries, started by
scripts/registry-host/team_registry.py), `mlflow server` with MLflow's authentication app and one
user per role, artifacts in an S3 bucket. The bucket is moto's server (a stand-in for S3 and
MinIO: the only part here that is not the real thing).

- a team's sqlite registry moves to the server with its versions, tags and aliases, and a copied
  version still verifies byte for byte;
- the trainer registers (its files land in the bucket, through the server), the gate reads and
  may not move an alias, the reconciler deploys from the server, nobody without a password reads;
- no verb makes a local sqlite file or mlruns/ while the team's registry is configured, and a
  checkout without a registry says in one line what to set (never "not found").

A real MLflow webhook opening a promotion is test_webhook.py's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import ROOT, base_env, run_mlops
from . import peers
from .helpers import merge
from .mlflow_server import free_port
from .registered import register_version, registry_of
from .workflows import sandbox, with_key

pytestmark = pytest.mark.slow
SCRIPT = ROOT / "scripts" / "registry-host" / "team_registry.py"
BUCKET = "team-registry"


class Team:
    """A running team registry: its URL, the host's secrets, the bucket's client."""

    def __init__(self, url: str, host: Path, s3: Any, env: dict[str, str]):
        self.url, self.host, self.s3, self.env = url, host, s3, env
        self.secrets: dict[str, Any] = {}  # the host's secrets.json, once `up` made it

    def role(self, name: str) -> dict[str, str]:
        """The environment a machine of that role has (its user and password, from a secret)."""
        return {
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": name,
            "MLFLOW_TRACKING_PASSWORD": self.secrets["roles"][name],
        }

    def script(self, *args: str, repo: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args, "--dir", str(self.host),
             "--port", self.url.rsplit(":", 1)[1], "--repo", str(repo)],
            env=self.env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip


def start_team(tmp_path: Path, repo: Path, server_extra: dict[str, str] | None = None) -> Iterator[Team]:
    """moto's S3 server, then `team_registry.py up` (PostgreSQL, MLflow with authentication, the
    roles) with its artifacts in the bucket; everything stopped at the end."""
    import boto3

    s3_port = free_port()
    endpoint = f"http://127.0.0.1:{s3_port}"
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }
    # the registry host's own folder: PostgreSQL runs as its own account, which must reach it
    host = Path(tempfile.mkdtemp(prefix="team-registry-", dir="/tmp"))
    env = {**base_env(), **aws, **(server_extra or {})}
    command = [peers.bin_of("moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)]
    with peers.serving(command, f"{endpoint}/moto-api/", tmp_path / "moto" / "log"):
        s3 = boto3.client("s3", endpoint_url=endpoint, **{k.lower(): v for k, v in aws.items() if "KEY" in k},
                          region_name="us-east-1")  # fmt: skip
        s3.create_bucket(Bucket=BUCKET)
        team = Team(f"http://127.0.0.1:{free_port()}", host, s3, env)
        try:
            up = team.script("up", "--artifacts", f"s3://{BUCKET}/mlflow", repo=repo)
            assert up.returncode == 0, up.stderr[-3000:]
            team.secrets = json.loads((host / "secrets.json").read_text())
            yield team
        finally:
            team.script("down", repo=repo)
            shutil.rmtree(host, ignore_errors=True)


@pytest.fixture
def team_repo(tmp_path: Path) -> Iterator[tuple[Team, Path]]:
    repo = sandbox(tmp_path / "repo")
    found = start_team(tmp_path, repo)
    team = next(found)
    try:
        yield team, repo
    finally:
        run_mlops("down", cwd=repo, env_extra=team.role("reconciler"))
        found.close()


def as_role(monkeypatch: pytest.MonkeyPatch, team: Team, role: str) -> None:
    for key, value in team.role(role).items():
        monkeypatch.setenv(key, value)


def local_state(repo: Path) -> list[str]:
    """What would show a silent fallback to a local registry: a sqlite file or mlruns/."""
    return sorted(str(p.relative_to(repo)) for p in [*repo.glob("*.db"), *repo.glob("mlruns")])


def test_a_team_registry_on_postgresql_with_a_user_per_role(
    team_repo: tuple[Team, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlops_gitops.core.errors import MlopsError

    team, repo = team_repo
    # A team's laptop registry (sqlite: two versions, @staging on v2), moved to the server.
    laptop = sandbox(tmp_path / "laptop")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for seed in (7, 8):
        register_version(laptop, "churn", seed=seed)
    registry_of(laptop).set_alias("churn", "staging", 2)
    sqlite_tags = {int(v.version): dict(v.tags) for v in registry_of(laptop).versions("churn")}
    moved = team.script("copy", "--from", f"sqlite:///{laptop / 'mlflow.db'}", repo=repo)
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert "churn: 2 versions, aliases ['staging']" in moved.stdout
    again = team.script("copy", "--from", f"sqlite:///{laptop / 'mlflow.db'}", repo=repo)
    assert again.returncode == 2 and "churn: the server has versions of it already" in again.stderr

    # The trainer registers v3: its files go through the server into the bucket.
    as_role(monkeypatch, team, "trainer")
    assert register_version(repo, "churn", seed=9) == 3
    keys = [o["Key"] for o in team.s3.list_objects_v2(Bucket=BUCKET, Prefix="mlflow/")["Contents"]]
    assert sum(k.endswith("/MLmodel") for k in keys) == 3  # two copied, one trained
    trainer = MlflowClient(team.url)
    with pytest.raises(Exception, match=r"PERMISSION_DENIED|403"):
        trainer.delete_registered_model("churn")  # EDIT: no deletion

    # The gate reads every version (the copied ones with their tags) and may not move an alias.
    as_role(monkeypatch, team, "gate")
    gate = registry_of(repo)
    read = {int(v.version): dict(v.tags) for v in gate.versions("churn")}
    assert {number: read[number] for number in sqlite_tags} == sqlite_tags
    assert gate.alias_version("churn", "staging").version == "2"
    with pytest.raises(MlopsError, match=r"set churn@staging: .*(PERMISSION_DENIED|Permission denied)"):
        gate.set_alias("churn", "staging", 3)

    # Without a password nothing is read.
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(MlopsError, match=r"401|Unauthorized|credentials"):
        registry_of(repo).versions("churn")

    # A role's environment for a person's shell: a file only its owner reads, never the password
    # on the terminal.
    said = subprocess.run(
        [sys.executable, str(SCRIPT), "env", "--dir", str(team.host), "--port", team.url.rsplit(":", 1)[1]],
        env={**team.env, "MLFLOW_ROLE": "gate"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert team.secrets["roles"]["gate"] not in said.stdout + said.stderr
    private = Path(said.stdout.strip())
    assert private.stat().st_mode & 0o777 == 0o600
    show = f'. "{private}" && echo "$MLFLOW_TRACKING_USERNAME $MLFLOW_TRACKING_PASSWORD"'
    sourced = subprocess.run(["bash", "-c", show],
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert sourced == ["gate", team.secrets["roles"]["gate"]]

    # The reconciler deploys v3, promoted by pull request, from the server; a copied version
    # still verifies against the sha256 recorded when it was registered on the laptop.
    reconciler = team.role("reconciler")
    promoted = run_mlops("promote", "churn", "--to", "staging", "--version", "3", "--no-pr", "-o", "json",
                         cwd=repo, env_extra=team.role("gate"))  # fmt: skip
    assert promoted.returncode == 0, promoted.stderr
    merge(repo, json.loads(promoted.stdout)["branch"])
    done = run_mlops("reconcile", "--env", "staging", cwd=repo, env_extra=reconciler)
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(run_mlops("status", "-o", "json", cwd=repo, env_extra=reconciler).stdout)
    serving = {d["environment"]: d["serving"] for d in status["deployments"]}
    assert serving == {"staging": "v3", "production": "-"}, done.stdout
    as_role(monkeypatch, team, "reconciler")
    assert registry_of(repo).alias_version("churn", "staging").version == "3"
    registry_of(repo).fetch_verified("churn", 1, tmp_path / "verified")
    assert local_state(repo) == []  # nothing fell back to a local sqlite registry

    # `mlops doctor`, as the registry's admin: the registry, each role's grants, the DVC remote,
    # the trust policy's key (made as the README's walk makes it).
    with_key(repo)
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "remote", "add", "-d", "team", f"s3://{BUCKET}/dvc"],
                   cwd=repo, check=True, capture_output=True)  # fmt: skip
    admin = {
        **team.role("trainer"),
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": team.secrets["admin_password"],
        **{k: v for k, v in team.env.items() if k.startswith("AWS_")},
        "AWS_ENDPOINT_URL": team.env["MLFLOW_S3_ENDPOINT_URL"],
    }

    def doctor() -> tuple[int, dict[str, dict[str, str]]]:
        done = run_mlops("doctor", "--offline", "-o", "json", cwd=repo, env_extra=admin)
        return done.returncode, {f["check"]: f for f in json.loads(done.stdout)["findings"]}

    code, found = doctor()
    assert code == 0 and {f["status"] for f in found.values()} == {"ok"}, found
    assert {"role trainer", "role gate", "role reconciler", "model churn", "DVC remote team"} <= set(found)
    assert "key team (keys/team.pub)" in found
    from mlflow.server.auth.client import AuthServiceClient

    for key, value in admin.items():
        monkeypatch.setenv(key, value)
    auth = AuthServiceClient(team.url)
    auth.revoke_user_permission("reconciler", "registered_model", "churn")
    auth.grant_user_permission("reconciler", "registered_model", "churn", "READ")
    code, found = doctor()
    assert code == 1 and found["role reconciler"]["detail"] == "registered_model churn: READ (expected EDIT)"
    assert found["role reconciler"]["fix"] == "team_registry.py roles"
    assert team.script("roles", repo=repo).returncode == 0  # the grants converge again
    assert doctor()[0] == 0


def test_a_checkout_without_a_registry_says_what_to_set(tmp_path: Path) -> None:
    """act's copy, a fresh clone, another machine: no sqlite file and no team registry. Reading
    verbs say so in one line (not "not found" from a file MLflow would make empty), make no file,
    and `mlops registry act-args` (what `make act-pr` passes to act) says what to set."""
    repo = sandbox(tmp_path / "repo")
    said = run_mlops("promote", "churn", "--to", "staging", "--version", "1", "--no-pr", cwd=repo)
    assert said.returncode == 2
    lines = [line for line in said.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no registry here (mlflow.db does not exist" in lines[0], said.stderr
    assert "MLFLOW_TRACKING_URI" in lines[0] and "not found" not in lines[0]
    assert local_state(repo) == []
    args = run_mlops("registry", "act-args", cwd=repo)
    assert args.returncode == 2 and "set MLFLOW_TRACKING_URI" in args.stderr
    team = {"MLFLOW_TRACKING_URI": "http://registry.internal:5000", "MLFLOW_TRACKING_USERNAME": "gate"}
    passed = run_mlops("registry", "act-args", cwd=repo, env_extra=team).stdout.split()
    assert passed == ["--var", "MLFLOW_TRACKING_URI=http://registry.internal:5000",
                      "--var", "MLFLOW_GATE_USERNAME=gate", "--secret", "MLFLOW_GATE_PASSWORD"]  # fmt: skip
    register_version(repo, "churn")
    own = run_mlops("registry", "act-args", cwd=repo).stdout.split()
    assert own == ["--var", f"MLFLOW_TRACKING_URI=sqlite:///{repo / 'mlflow.db'}"]
    (repo / ".actrc").write_text("--var MLFLOW_TRACKING_URI=http://elsewhere:5000\n")
    assert run_mlops("registry", "act-args", cwd=repo).stdout.strip() == ""
