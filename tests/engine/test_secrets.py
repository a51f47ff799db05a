"""Secrets stay secret (#15, class 9): a credential in MLFLOW_TRACKING_URI (or any URI) or in a
secret's environment variable never reaches a message, a log, a record or the evidence pack."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from ..conftest import git_commit_all, run_mlops
from .helpers import served_repo
from .mlflow_server import free_port, mlflow_server
from .test_evidence import set_version

__all__ = ["served_repo"]  # the fixture `repo`: a copy of the registered repository, servers stopped after

URI_SECRET = "hunter2-in-the-uri"
ENV_SECRET = "tok-from-the-environment-1234"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"registry http://alice:{URI_SECRET}@mlflow.example.com:5000/api: refused",
            "registry http://***@mlflow.example.com:5000/api: refused",
        ),
        ("https://ghp_abcdef0123456789@github.com/acme/x.git", "https://***@github.com/acme/x.git"),
        (
            "s3://bucket/m.tar?X-Amz-Credential=AKIA/x&X-Amz-Signature=0a1b2c3d&x=1",
            "s3://bucket/m.tar?X-Amz-Credential=***&X-Amz-Signature=***&x=1",
        ),
        (
            "postgresql://svc:pw@db:5432/mlflow?sslmode=require",
            "postgresql://***@db:5432/mlflow?sslmode=require",
        ),
        ('{"uri": "http://u:p@h/?token=abc"}', '{"uri": "http://***@h/?token=***"}'),
        (
            "sqlite:////work/repo/mlflow.db and user@example.com",
            "sqlite:////work/repo/mlflow.db and user@example.com",
        ),
    ],
)
def test_credentials_in_a_uri_are_masked_and_the_rest_kept(text: str, expected: str) -> None:
    from mlops_gitops.core.redact import redact

    assert redact(text) == expected


def test_a_secret_variables_value_is_masked_wherever_it_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_gitops.core.redact import RedactingStream, redact, redact_data

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", ENV_SECRET)
    monkeypatch.setenv("MLOPS_DEFAULT_MODEL", "plain-value-123")
    assert redact(f"Bearer {ENV_SECRET}; plain-value-123") == "Bearer ***; plain-value-123"
    assert redact_data({"a": [f"x{ENV_SECRET}"], ENV_SECRET: 1}) == {"a": ["x***"], "***": 1}
    sink = io.StringIO()
    stream = RedactingStream(sink)  # type: ignore[arg-type]
    half = len(ENV_SECRET) // 2
    stream.write(f"one {ENV_SECRET[:half]}")  # a secret split across two writes
    stream.write(f"{ENV_SECRET[half:]} two\nthree http://a:b@h")
    stream.flush()
    assert sink.getvalue() == "one *** two\nthree http://***@h"


def _every_text(root: Path) -> dict[str, str]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts and path.suffix not in (".db", ".pkl", ".skops"):
            found[str(path.relative_to(root))] = path.read_bytes().decode("utf-8", "replace")
    return found


@pytest.mark.slow
def test_no_credential_reaches_a_message_log_record_or_pack(repo: Path, tmp_path: Path) -> None:
    port_dead = free_port()
    dead = f"http://alice:{URI_SECRET}@127.0.0.1:{port_dead}"
    secret_env = {"MLFLOW_TRACKING_TOKEN": ENV_SECRET}
    said: list[str] = []

    def mlops(*args: str, uri: str, verbose: bool = False) -> subprocess.CompletedProcess[str]:
        proc = run_mlops(
            *(["--verbose"] if verbose else []),
            *args,
            cwd=repo,
            env_extra={**secret_env, "MLFLOW_TRACKING_URI": uri},
        )
        said.append(proc.stdout + proc.stderr)
        return proc

    # a registry that cannot be reached: the error names it, without its password
    proc = mlops("reconcile", "--env", "staging", uri=dead)
    assert proc.returncode == 2
    assert f"http://***@127.0.0.1:{port_dead}" in proc.stderr, proc.stderr
    proc = mlops("reconcile", "--env", "staging", uri=dead, verbose=True)  # --verbose: tracebacks too
    assert proc.returncode == 2 and "***@127.0.0.1" in proc.stderr

    # the repository's own registry served for real, reached through a URI with credentials in it
    with mlflow_server(tmp_path / "live", backend=f"sqlite:///{repo / 'mlflow.db'}") as url:
        live = url.replace("http://", f"http://alice:{URI_SECRET}@")
        set_version(repo, "staging", 1)
        git_commit_all(repo, "Promote churn v1 to staging")
        for args in (
            ("reconcile", "--env", "staging"),
            ("status", "--env", "staging", "--output", "json"),
        ):
            proc = mlops(*args, uri=live)
            assert proc.returncode == 0, proc.stderr
        pack = tmp_path / "pack.zip"
        proc = mlops("evidence", "churn", "--env", "staging", "-o", str(pack), uri=live)
        assert proc.returncode == 0, proc.stderr

    texts = {f"output {i}": text for i, text in enumerate(said)}
    texts.update(_every_text(repo / ".mlops"))
    with zipfile.ZipFile(pack) as archive:
        texts.update({f"pack:{n}": archive.read(n).decode("utf-8", "replace") for n in archive.namelist()})
    assert any(name.startswith("records/") for name in texts) and any(n.startswith("pack:") for n in texts)
    for where, text in texts.items():
        assert URI_SECRET not in text, where
        assert ENV_SECRET not in text, where
    records = [
        json.loads(line) for line in (repo / ".mlops/records/staging/churn.jsonl").read_text().splitlines()
    ]
    assert records and records[-1]["version"] == 1


def test_a_model_server_runs_without_the_platform_s_secrets(repo: Path) -> None:
    """The server runs the model's own code: the reconciler's registry and cloud credentials
    never reach its process (read from /proc/<pid>/environ), and it serves all the same."""
    from .helpers import example, http, set_manifest, url_of

    secrets = {
        "MLFLOW_TRACKING_PASSWORD": "registry-password-77",
        "MLFLOW_TRACKING_TOKEN": ENV_SECRET,
        "AWS_SECRET_ACCESS_KEY": "aws-secret-key-0123456789",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE000",
        "GITHUB_TOKEN": "ghp_example_token_000",
        "MLOPS_GATE_TOKEN": "gate-token-0123456",  # one of ours, but a secret by its name
        "MLOPS_COLLECT_TOKEN": "collect-token-0123456",  # reconcile.yml's, for the logger URL
    }
    set_manifest(repo, "staging", "v1", version=1)
    proc = run_mlops("reconcile", "--env", "staging", cwd=repo, env_extra={**secrets, "MLOPS_KNOB": "kept"})
    assert proc.returncode == 0, proc.stderr
    pid = json.loads((repo / ".mlops/servers/staging/churn.json").read_text())["pid"]
    environ = dict(
        item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item
    )
    assert "PATH" in environ and "PYTHONPATH" in environ and environ.get("MLOPS_KNOB") == "kept"
    leaked = {k for k in environ if k in secrets} | {k for k, v in environ.items() if v in secrets.values()}
    assert leaked == set(), leaked
    assert "MLFLOW_TRACKING_URI" not in environ
    status, answer = http("POST", f"{url_of(repo)}/predict", {"dataframe_records": example(repo)})
    assert status == 200 and answer["version"] == 1
