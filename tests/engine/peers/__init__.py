"""The real peers the compatibility tests run: KServe's storage initializer (`kserve-storage`),
KServe's MLflow runtime (MLServer with `mlserver-mlflow`), a v2 client (`tritonclient[http]`)
and an S3-compatible server (`moto` in server mode, standing in for a bucket).

They live in their own environment, `.venv-peers` beside the tool set (built on first use from
requirements.txt and constraints.txt here, about a minute), because their pins differ from the
engine's. Tests talk to them as a team's cluster would: over HTTP, or by running their code in
that environment's Python.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...conftest import ROOT, base_env

HERE = Path(__file__).resolve().parent
VENV = ROOT / ".venv-peers"


def python() -> Path:
    """The peers' Python, installed first when requirements or constraints changed."""
    files = [HERE / "requirements.txt", HERE / "constraints.txt"]
    # (bytecode compiled at install, as `make install` does: part of the stamp)
    want = hashlib.sha256(b"".join(f.read_bytes() for f in files) + b"bytecode").hexdigest()[:16]
    stamp = VENV / ".installed"
    binary = VENV / "bin" / "python"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(ROOT / ".venv-peers.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text().strip() == want and binary.exists():
            return binary
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        proc = subprocess.run(
            [*installer(binary), "-c", str(files[1]), "-r", str(files[0])],
            capture_output=True,
            text=True,
            env=installer_env(),
        )
        if proc.returncode != 0:
            raise RuntimeError(f"installing the peers into {VENV} failed:\n{proc.stderr[-3000:]}")
        stamp.write_text(want + "\n")
    return binary


def installer(python: Path) -> list[str]:
    """uv when the tool set has it (`make install` puts it there; about 5x faster), else pip. Both
    compile bytecode (pip by default): processes that import the peers start in a third the time
    where PYTHONDONTWRITEBYTECODE is set."""
    uv = Path(sys.executable).parent / "uv"
    if uv.is_file():
        return [str(uv), "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python)]
    return [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]


def installer_env() -> dict[str, str]:
    """pip's sources, said to uv as well (scripts/uv_sources.py)."""
    env = dict(os.environ)
    said = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "uv_sources.py"), sys.executable],
        capture_output=True,
        text=True,
    ).stdout
    for line in said.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0] if value else ""
    return env


def run(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run `code` in the peers' Python (argv[1:] = args); its stdout, or AssertionError with
    its stderr when it fails."""
    proc = subprocess.run(
        [str(python()), "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base_env(), **(env or {})},
    )
    assert proc.returncode == 0, f"peer script failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc.stdout


@contextlib.contextmanager
def serving(
    command: list[str], ready_url: str, log: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process (its own process group, killed whole at the end), once `ready_url`
    answers 200."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**base_env(), **(env or {})},
            cwd=log.parent,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(ready_url, timeout=2) as answer:
                if answer.status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not get ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def bin_of(name: str) -> str:
    """A console script of the peers' environment (mlserver, moto_server)."""
    return str(python().parent / name)


def cloudevent(kind: str, ce_id: str, isvc: dict[str, Any], endpoint: str = "default") -> dict[str, str]:
    """The headers KServe's logger sends (binary content mode; kserve/kserve pkg/logger/worker.go:
    the type, ce-id shared by request and response, the inferenceservicename, namespace,
    component, endpoint, metadata and annotations extensions, the original Content-Type)."""
    annotations = isvc["metadata"]["annotations"]
    listed = isvc["spec"]["predictor"]["logger"]["metadataAnnotations"]
    return {
        "Ce-Specversion": "1.0",
        "Ce-Id": ce_id,
        "Ce-Type": f"org.kubeflow.serving.inference.{kind}",
        "Ce-Source": "http://localhost:9081/",
        "Ce-Time": "2026-11-30T12:00:00.000Z" if kind == "request" else "2026-11-30T12:00:00.021Z",
        "Ce-Inferenceservicename": isvc["metadata"]["name"],
        "Ce-Namespace": isvc["metadata"]["namespace"],
        "Ce-Component": "predictor",
        "Ce-Endpoint": endpoint,
        "Ce-Metadata": "{}",
        "Ce-Annotations": json.dumps({key: annotations[key] for key in listed}),
        "Content-Type": "application/json",
    }
