"""A real `mlflow server` on a free loopback port, for the tests that talk to MLflow over HTTP."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..conftest import base_env

# Each pytest-xdist worker takes ports from its own block below the kernel's ephemeral range
# (32768 and up, /proc/sys/net/ipv4/ip_local_port_range): a port one worker was handed is never
# handed to the other, nor to an outgoing connection, between the check and the server's bind.
# Outside a worker (a benchmark run by hand) the kernel picks one.
_BLOCK = 1500
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_FIRST = 20000 + _BLOCK * int(_WORKER[2:]) if _WORKER.startswith("gw") and _WORKER[2:].isdigit() else 0
_NEXT = itertools.cycle(range(_FIRST, _FIRST + _BLOCK))


def free_port() -> int:
    """A loopback port no one listens on now, from this worker's own block."""
    if not _FIRST:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(_BLOCK):
        port = next(_NEXT)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {_FIRST}..{_FIRST + _BLOCK - 1}")


def _listeners(port: int) -> set[str]:
    """The inodes of the loopback sockets listening on `port` (/proc/net/tcp, state 0A)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            found.add(fields[9])
    return found


def _tree(pid: int) -> set[int]:
    """pid and every process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, grew = {pid}, True
    while grew:
        below = {child for child, parent in parents.items() if parent in tree} - tree
        tree, grew = tree | below, bool(below)
    return tree


def owns_port(pid: int, port: int) -> bool:
    """Whether the socket listening on `port` belongs to process `pid` or one of its children: a
    server that answers on the port is trusted only once it is shown to be the one we started."""
    inodes = {f"socket:[{i}]" for i in _listeners(port)}
    for member in _tree(pid):
        try:
            fds = list(Path(f"/proc/{member}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    return True
            except OSError:
                continue
    return False


@contextmanager
def mlflow_server(workdir: Path, timeout: float = 90.0, backend: str | None = None) -> Iterator[str]:
    """A served registry: its own sqlite store under workdir, or `backend` (an existing one)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        backend or f"sqlite:///{workdir / 'server.db'}",
        "--artifacts-destination",
        str(workdir / "artifacts"),
        "--workers",
        "1",
    ]
    log = (workdir / "server.log").open("w")
    # MLflow 3's job runner (huey consumers for GenAI scoring jobs: eight more interpreters) is
    # off, as MLflow's own setting allows: a registry needs none of it.
    env = {**base_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200 and owns_port(proc.pid, port):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start: {(workdir / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
