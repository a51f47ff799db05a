"""The team's registry on one host: MLflow's tracking server on PostgreSQL, with MLflow's
authentication app (one user per role) and artifacts in S3 (or a directory, for a first try).

    python scripts/registry-host/team_registry.py up [--dir D] [--port 5000] [--artifacts s3://b/p]
    python scripts/registry-host/team_registry.py roles     # grant the roles on every model (again)
    . "$(MLFLOW_ROLE=gate python scripts/registry-host/team_registry.py env)"   # a role's env
    python scripts/registry-host/team_registry.py copy --from sqlite:///mlflow.db
    python scripts/registry-host/team_registry.py down

`up` makes (once) and starts a PostgreSQL cluster from the host's binaries (Debian's `postgresql`
package: initdb, pg_ctl), listening on loopback with a password; then `mlflow server --app-name
basic-auth` on it, serving artifacts from `--artifacts` (clients upload and download through the
server, so only the server holds the object store's keys: AWS_* and MLFLOW_S3_ENDPOINT_URL in its
environment). It then creates the project's experiment and every model of models/, and one user
per role with the least of MLflow's permissions (READ, EDIT, MANAGE per experiment and per
registered model; nothing by default):

    trainer      EDIT on the experiment (runs, metrics, the model's files) and on every model
                 (new versions and their tags)
    gate         READ on every model; EDIT on the experiment, to keep its decisions beside
                 each version's run (`mlops gate --record`)
    reconciler   EDIT on every model (aliases, the hold and drift tags); READ on the experiment

What MLflow cannot restrict is in README.md here. Secrets (the database's, the admin's, the roles'
passwords, the server's session key and the webhook secrets' encryption key) are made once, kept
in DIR/secrets.json (mode 0600) and passed to processes through their environment, never their
command lines. Every step can be re-run: `up` starts what is not running and converges the roles.
`down` stops the server it started (by its pid, once the pid is shown to be that server) and the
cluster (pg_ctl, by its data directory).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from mlops_gitops.registry.roles import ROLES  # noqa: E402  (after the path is set)

PG_BIN_DIRS = [Path("/usr/lib/postgresql") / v / "bin" for v in ("17", "16", "15", "14")]


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_bin(name: str) -> str:
    found = shutil.which(name) or next((str(d / name) for d in PG_BIN_DIRS if (d / name).exists()), None)
    if not found:
        fail(f"{name}: not found (expected PostgreSQL's server binaries: apt-get install postgresql)")
    return str(found)


class Host:
    """The registry host's directory: the cluster, the server's log and pid, the secrets."""

    def __init__(self, folder: Path):
        self.dir = folder.resolve()
        self.secrets_file = self.dir / "secrets.json"
        self.pgdata = self.dir / "postgres"
        self.pid_file = self.dir / "mlflow.pid"
        # PostgreSQL refuses to run as root: a root user runs it as the `postgres` account
        self.pg_user = "postgres" if os.geteuid() == 0 else None

    def secrets(self) -> dict[str, Any]:
        if self.secrets_file.exists():
            return dict(json.loads(self.secrets_file.read_text()))
        made = {
            "pg_password": secrets.token_urlsafe(24),
            "pg_port": free_port(),
            "admin_password": secrets.token_urlsafe(24),
            "flask_secret": secrets.token_urlsafe(32),
            "webhook_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "roles": {role: secrets.token_urlsafe(24) for role in ROLES},
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(made, out, indent=1)
        return made

    def _as_pg(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if self.pg_user:
            command = ["runuser", "-u", self.pg_user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, **kwargs)

    def postgres_up(self, known: dict[str, Any]) -> str:
        """The cluster running (made first if need be); the server's backend store URI."""
        if self.pg_user:
            account = pwd.getpwnam(self.pg_user)
            self.dir.chmod(0o711)  # the account walks in, reads nothing else here
            walk = self._as_pg(["test", "-x", str(self.dir)])
            if walk.returncode != 0:
                fail(f"--dir {self.dir}: the {self.pg_user} account cannot reach it (expected a folder "
                     "whose parents it may pass through, such as /var/lib/mlops/registry)")  # fmt: skip
        if not (self.pgdata / "PG_VERSION").exists():
            shutil.rmtree(self.pgdata, ignore_errors=True)  # a half-made cluster from a killed run
            self.pgdata.mkdir(mode=0o700)
            pwfile = self.dir / "pgpass.tmp"
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(known["pg_password"] + "\n")
            if self.pg_user:
                os.chown(self.pgdata, account.pw_uid, account.pw_gid)
                os.chown(pwfile, account.pw_uid, account.pw_gid)
            made = self._as_pg(
                [
                    pg_bin("initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "mlflow",
                    "--pwfile",
                    str(pwfile),
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ]
            )
            pwfile.unlink()
            if made.returncode != 0:
                fail(f"initdb {self.pgdata}: {made.stderr.strip()[-500:]}")
        status = self._as_pg([pg_bin("pg_ctl"), "-D", str(self.pgdata), "status"])
        if status.returncode != 0:
            options = (
                f"-c listen_addresses=127.0.0.1 -p {known['pg_port']} "
                f"-c unix_socket_directories={self.pgdata}"
            )
            started = self._as_pg(
                [
                    pg_bin("pg_ctl"),
                    "-D",
                    str(self.pgdata),
                    "-o",
                    options,
                    "-l",
                    str(self.pgdata / "log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
            if started.returncode != 0:
                fail(f"pg_ctl start: {started.stderr.strip()[-500:]} (log: {self.pgdata / 'log'})")
        env = {**os.environ, "PGPASSWORD": known["pg_password"]}
        for database in ("mlflow", "mlflow_auth"):
            psql = [pg_bin("psql"), "-h", "127.0.0.1", "-p", str(known["pg_port"]), "-U", "mlflow", "-d"]
            exists = subprocess.run(
                [*psql, "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{database}'"],
                capture_output=True, text=True, env=env,
            )  # fmt: skip
            if exists.stdout.strip() != "1":
                subprocess.run([*psql, "postgres", "-c", f"CREATE DATABASE {database}"], check=True, env=env,
                               capture_output=True)  # fmt: skip
        return f"postgresql+psycopg2://mlflow@127.0.0.1:{known['pg_port']}"

    def server_env(self, known: dict[str, Any], backend: str) -> dict[str, str]:
        ini = self.dir / "basic_auth.ini"
        ini.write_text(
            "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
            f"database_uri = {backend}/mlflow_auth\nadmin_username = admin\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # MLflow's credential cache: a password is checked against its hash (werkzeug's scrypt,
            # tens of milliseconds of CPU by design) once per 5 minutes, not on every request; the
            # server spent most of its CPU there. One worker, and passwords change only through
            # its API (`up` again), which drops the entry at once: nothing is served stale.
            "auth_cache_ttl_seconds = 300\n"
        )
        return {
            **os.environ,
            "PGPASSWORD": known["pg_password"],
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_PASSWORD": known["admin_password"],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": known["flask_secret"],
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": known["webhook_key"],
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }

    def running(self, port: int) -> int | None:
        """The pid of our server, when its pid file names a live `mlflow server` on `port` from here."""
        try:
            pid = int(self.pid_file.read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if b"server" in command and str(port).encode() in command else None

    def server_up(self, known: dict[str, Any], backend: str, port: int, artifacts: str) -> str:
        url = f"http://127.0.0.1:{port}"
        process = None
        if self.running(port) is None:
            command = [
                sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
                "--backend-store-uri", f"{backend}/mlflow", "--artifacts-destination", artifacts,
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            ]  # fmt: skip
            with (self.dir / "mlflow.log").open("ab") as log:
                process = subprocess.Popen(
                    command, env=self.server_env(known, backend), stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, cwd=self.dir,
                )  # fmt: skip
            self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return url
            except OSError:
                if (process.poll() is not None) if process else self.running(port) is None:
                    break  # it ended: its log says why
                time.sleep(0.5)
        last = (self.dir / "mlflow.log").read_text(errors="replace").strip().splitlines()[-1:]
        fail(f"mlflow server on {url} did not start: {' '.join(last)} (log: {self.dir / 'mlflow.log'})")
        return url

    def down(self, port: int) -> None:
        pid = self.running(port)
        if pid is not None:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(60):
                if self.running(port) is None:
                    break
                time.sleep(0.5)
        if (self.pgdata / "PG_VERSION").exists():
            self._as_pg([pg_bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"])


def admin_env(url: str, known: dict[str, Any]) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": known["admin_password"],
    }


def grant(auth: Any, user: str, kind: str, name: str, permission: str) -> None:
    """The user's permission on one resource, made what it should be (MLflow's grant does not
    replace an existing one: that one is revoked first)."""
    from mlflow.exceptions import MlflowException

    try:
        auth.grant_user_permission(user, kind, name, permission)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
        if auth.get_user_permission(user, kind, name).permission != permission:
            auth.revoke_user_permission(user, kind, name)
            auth.grant_user_permission(user, kind, name, permission)


def grant_roles(url: str, known: dict[str, Any], repo_root: Path) -> dict[str, str]:
    """The experiment and every model made (as the engine makes them), each role's user made and
    granted ROLES; {role: username}."""
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient
    from mlops_gitops.core.config import load_repo
    from mlops_gitops.registry.client import Registry

    os.environ.update(admin_env(url, known))
    registry = Registry(load_repo(repo_root))
    experiment = registry.experiment_id()
    for model in sorted(registry.repo.models):
        registry.ensure_registered_model(model)
    auth = AuthServiceClient(url)

    for role, grants in ROLES.items():
        try:
            auth.create_user(role, known["roles"][role])
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise
            auth.update_user_password(role, known["roles"][role])
        grant(auth, role, "experiment", experiment, grants["experiment"])
        for model in sorted(registry.repo.models):
            grant(auth, role, "registered_model", model, grants["models"])
    return {role: role for role in ROLES}


def copy(source: str, url: str, known: dict[str, Any], repo_root: Path) -> list[str]:
    """Every version of every model in the `source` registry, with its files, tags and run
    metrics, registered in the same order on the server (so version numbers stay the manifests'),
    then the aliases. A model the server already has versions of is refused, naming it."""
    import tempfile

    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlops_gitops.core.config import load_repo
    from mlops_gitops.registry.client import Registry

    os.environ.update(admin_env(url, known))
    old, new = MlflowClient(source), MlflowClient(url)
    experiment = Registry(load_repo(repo_root)).experiment_id()
    said = []
    for registered in old.search_registered_models(max_results=1000):
        name = registered.name
        if new.search_model_versions(f"name = '{name}'"):
            fail(f"{name}: the server has versions of it already (expected a model not yet copied)")
        try:
            new.create_registered_model(name, tags=registered.tags, description=registered.description)
        except Exception as exc:  # made by `up` (roles): its tags follow
            if "RESOURCE_ALREADY_EXISTS" not in str(getattr(exc, "error_code", exc)):
                raise
            for key, value in (registered.tags or {}).items():
                new.set_registered_model_tag(name, key, value)
        versions = sorted(old.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
        for version in versions:
            run = old.get_run(version.run_id)
            made = new.create_run(experiment, tags={k: v for k, v in run.data.tags.items()})
            for key, value in run.data.metrics.items():
                new.log_metric(made.info.run_id, key, value)
            for key, value in run.data.params.items():
                new.log_param(made.info.run_id, key, value)
            with tempfile.TemporaryDirectory() as work:
                if old.list_artifacts(version.run_id):  # the run's own files (report, decisions)
                    new.log_artifacts(made.info.run_id, old.download_artifacts(version.run_id, "", work))
                stored = old.get_model_version_download_uri(name, version.version)  # the files' own place
                model_dir = download_artifacts(artifact_uri=stored, dst_path=f"{work}/m")
                # a logged model, as MLflow 3 registers them: the version's files are fetched from
                # models:/<id> on the server as they were on the laptop (sha256 and all)
                logged = new.create_logged_model(experiment, name="model", source_run_id=made.info.run_id)
                new.log_model_artifacts(logged.model_id, model_dir)
                new.finalize_logged_model(logged.model_id, "READY")
            new.set_terminated(made.info.run_id)
            copied = new.create_model_version(
                name, f"models:/{logged.model_id}", run_id=made.info.run_id, tags=version.tags,
                description=version.description, model_id=logged.model_id,
            )  # fmt: skip
            if str(copied.version) != str(version.version):
                fail(f"{name} v{version.version}: became v{copied.version} (expected the same number)")
        for alias, number in (registered.aliases or {}).items():
            new.set_registered_model_alias(name, alias, str(number))
        said.append(f"{name}: {len(versions)} versions, aliases {sorted(registered.aliases or {})}")
    return said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("verb", choices=["up", "roles", "copy", "down", "env"])
    parser.add_argument("--dir", type=Path, default=ROOT / ".mlops" / "team-registry")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--artifacts", default=None, help="s3://bucket/prefix (default: DIR/artifacts)")
    parser.add_argument("--from", dest="source", default=None, help="copy: the registry to copy from")
    parser.add_argument("--repo", type=Path, default=ROOT)
    args = parser.parse_args()
    host = Host(args.dir)
    if args.verb == "down":
        if host.secrets_file.exists():
            host.down(args.port)
        return
    known = host.secrets()
    url = f"http://127.0.0.1:{args.port}"
    if args.verb == "up":
        backend = host.postgres_up(known)
        url = host.server_up(known, backend, args.port, args.artifacts or str(host.dir / "artifacts"))
        grant_roles(url, known, args.repo)
        print(json.dumps({"url": url, "roles": sorted(ROLES), "secrets": str(host.secrets_file)}))
    elif args.verb == "roles":
        grant_roles(url, known, args.repo)
    elif args.verb == "copy":
        if not args.source:
            fail("copy: --from: missing (expected the registry to copy, such as sqlite:///mlflow.db)")
        for line in copy(args.source, url, known, args.repo):
            print(line)
    elif args.verb == "env":  # one role's environment in a private file; its path, to source
        role = os.environ.get("MLFLOW_ROLE", "trainer")
        if role not in ROLES:
            fail(f"MLFLOW_ROLE: {role!r} (expected one of {', '.join(ROLES)})")
        path = host.dir / f"{role}.env"  # the password never reaches the terminal
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"export MLFLOW_TRACKING_URI={url} MLFLOW_TRACKING_USERNAME={role}\n")
            out.write(f"export MLFLOW_TRACKING_PASSWORD={known['roles'][role]}\n")
        print(path)


if __name__ == "__main__":
    from mlops_gitops.core.errors import MlopsError

    try:
        main()
    except MlopsError as exc:  # a repository or registry problem: its one line
        fail(str(exc))
