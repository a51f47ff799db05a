"""A fork server for the tests' `mlops` commands: each command is still its own process, running
the real CLI (`python -m mlops_gitops.cli`) in its own working directory and environment, but it
is forked from a server that imported the heavy libraries (MLflow and its sqlite stores,
scikit-learn, pandas, SciPy, evidently, model-signing) once, instead of importing them afresh: two
to three seconds of CPU saved per command, over a thousand commands a run.

What a forked command shares with the server is only those already-imported third-party modules,
which read their environment when called, not when imported (the server holds no thread, and
the engine itself is imported by each command, after its environment is set). What differs from
a fresh interpreter, and why it does not matter here: the hash seed is the server's (set
iteration order is the same from command to command, as under PYTHONHASHSEED), and the module
import cost is not measured (the benchmarks never use this; they start real processes).

`MLOPS_TESTS_FORK=0` turns it off: every command then starts a fresh interpreter.

The protocol, on a Unix socket private to the pytest process: the client passes its stdin,
stdout and stderr files (SCM_RIGHTS) and a length-prefixed JSON request (argv, cwd, env); the
command's process sends its pid, then its exit code last thing before it ends; the socket's end
of file is the process's end, after which its output is whole.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import runpy
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

PRELOAD = (
    "numpy",
    "pandas",
    "scipy.stats",
    "sklearn.pipeline",
    "sklearn.metrics",
    "mlflow",
    "mlflow.pyfunc",
    "mlflow.sklearn",
    "mlflow.tracking",
    "mlflow.artifacts",
    # a sqlite registry's stores: two thirds of a second of imports in every command that opens one
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "model_signing.signing",
    "model_signing.verifying",
    # `mlops drift`'s reports: 2.7 s of imports on top of the rest, in each of some forty commands
    "evidently",
    "evidently.presets",
    "sqlalchemy",
    "alembic",
    "click",
    "yaml",
    "jsonschema",
    "rich.console",
    "requests",
)
_HEAD = struct.Struct("!q")


def _exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


# ---------------------------------------------------------------------------------- the server


def serve(path: str) -> None:
    """Import, then fork one process per connection, until killed. No try/finally here: a forked
    command leaves this function by raising SystemExit, and must undo nothing of the server's."""
    for name in PRELOAD:
        importlib.import_module(name)
    # What the imports made moves out of the garbage collector's sight: a command's collections
    # would otherwise walk (and so copy, page by page) the server's whole heap in every fork.
    gc.collect()
    gc.freeze()
    if threading.active_count() != 1:  # fork copies one thread: a second one's locks would be stuck
        raise SystemExit(f"forkserver: {threading.active_count()} threads after the imports (expected 1)")
    sys.path.pop(0)  # this script's folder
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the commands
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            _command(conn)  # raises SystemExit
        conn.close()


def _command(conn: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the command waits for its own children
    head, fds, _, _ = socket.recv_fds(conn, _HEAD.size, 3)
    request = json.loads(_exact(conn, _HEAD.unpack(head)[0]))
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    env, cwd = request["env"], request["cwd"]
    old = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    new = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.path[:] = [cwd, *new, *(p for p in sys.path if p not in old)]  # as `python -m` builds it
    sys.argv = ["mlops", *request["args"]]
    import numpy

    numpy.random.seed()  # `random` reseeds itself after a fork; numpy's global generator does not
    conn.sendall(_HEAD.pack(os.getpid()))
    outcome = {"code": 1}

    def report() -> None:  # registered first, so it runs last of the exit handlers
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        conn.sendall(_HEAD.pack(outcome["code"]))

    atexit.register(report)
    try:
        if request.get("script"):  # as the `mlops` console script runs it (the shim's calls)
            importlib.import_module("mlops_gitops.cli").main()
        else:  # as `python -m mlops_gitops.cli` runs it
            runpy.run_module("mlops_gitops.cli", run_name="__main__", alter_sys=True)
        outcome["code"] = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            outcome["code"] = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        traceback.print_exc()
        outcome["code"] = 130
    except BaseException:  # what the interpreter does with an uncaught exception
        traceback.print_exc()
    raise SystemExit(outcome["code"])


# ---------------------------------------------------------------------------------- the client


class _Server:
    """This pytest process's fork server, started on first use, stopped at exit."""

    def __init__(self, env: dict[str, str]):
        self.folder = tempfile.mkdtemp(prefix="mlops-fork-")
        self.path = str(Path(self.folder) / "socket")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, self.path], env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line != b"ready\n":
            self.proc.kill()
            raise RuntimeError(f"forkserver did not start: {line!r}")
        atexit.register(self.stop)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        Path(self.path).unlink(missing_ok=True)
        os.rmdir(self.folder)


_server: _Server | None = None


def enabled() -> bool:
    return (
        os.environ.get("MLOPS_TESTS_FORK", "1") != "0" and hasattr(socket, "send_fds") and os.name == "posix"
    )


def run(
    args: list[str],
    cwd: Path,
    env: dict[str, str],
    server_env: dict[str, str],
    input: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Like `subprocess.run([python, -m, mlops_gitops.cli, *args], env=env, capture_output=True,
    text=True)`, with the command forked from the server (started in `server_env` if it is not)."""
    global _server
    if _server is None or _server.proc.poll() is not None:
        _server = _Server(server_env)
    with (
        tempfile.TemporaryFile() as stdin,
        tempfile.TemporaryFile() as stdout,
        tempfile.TemporaryFile() as stderr,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn,
    ):
        if input is not None:
            stdin.write(input.encode())
            stdin.seek(0)
        payload = json.dumps({"args": args, "cwd": str(cwd), "env": env}).encode()
        conn.connect(_server.path)
        socket.send_fds(conn, [_HEAD.pack(len(payload))], [stdin.fileno(), stdout.fileno(), stderr.fileno()])
        conn.sendall(payload)
        conn.settimeout(timeout)
        pid = _HEAD.unpack(_exact(conn, _HEAD.size))[0]
        try:
            code = _finished(conn)
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            raise subprocess.TimeoutExpired(["mlops", *args], timeout) from None
        out, err = (_text(f) for f in (stdout, stderr))
    return subprocess.CompletedProcess([sys.executable, "-m", "mlops_gitops.cli", *args], code, out, err)


def shim(folder: Path, server_env: dict[str, str]) -> Path:
    """An executable `mlops` in `folder` for shell scripts (a runbook's commands): each call runs
    the real CLI forked from this pytest process's server, with the shell's own working
    directory, environment, stdin, stdout and stderr, and exits with the command's code. A
    SIGTERM or SIGINT to the shim reaches the command. Returns `folder`, to put first on PATH."""
    global _server
    if _server is None or _server.proc.poll() is not None:
        _server = _Server(server_env)
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "mlops"
    script.write_text(
        f"#!{sys.executable} -S\n"
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
        "from tests.forkserver import client\n"
        f"sys.exit(client({_server.path!r}, sys.argv[1:]))\n"
    )
    script.chmod(0o755)
    return folder


def venv(folder: Path, server_env: dict[str, str]) -> Path:
    """A view of this virtual environment for what make and act run (VENV, or the workflows'
    shared tool set): its files linked (`bin/python` too, so an interpreter started there still
    finds them through the linked pyvenv.cfg), but its `bin/mlops` the shim, so the Makefile's
    `$(BIN)/mlops` and a workflow step's `mlops` are forked from this pytest process's server.
    The install stamp is this environment's, so `make install` has nothing to do; mypy's cache
    (`make typecheck`) is this environment's too. `bin/activate` still names this environment,
    so a shell that sources it (the README's walk) runs the real console script. Returns `folder`."""
    base = Path(sys.prefix)
    (base / "mypy-cache").mkdir(exist_ok=True)
    (folder / "bin").mkdir(parents=True)
    for entry in base.iterdir():
        if entry.name != "bin":
            (folder / entry.name).symlink_to(entry)
    for tool in (base / "bin").iterdir():
        if tool.name != "mlops":
            (folder / "bin" / tool.name).symlink_to(tool)
    shim(folder / "bin", server_env)
    return folder


def client(path: str, args: list[str]) -> int:
    """The shim's side: this process's stdin, stdout and stderr passed to a forked command; its
    exit code (128 + the signal for one killed before reporting, as a shell says)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        payload = json.dumps({"args": args, "cwd": os.getcwd(), "env": dict(os.environ), "script": True})
        payload = payload.encode()
        conn.connect(path)
        socket.send_fds(conn, [_HEAD.pack(len(payload))], [0, 1, 2])
        conn.sendall(payload)
        pid = _HEAD.unpack(_exact(conn, _HEAD.size))[0]
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda number, _: os.kill(pid, number))
        code = _finished(conn)
    return 128 + signal.SIGKILL if code == -signal.SIGKILL else code


def _finished(conn: socket.socket) -> int:
    """The exit code, once the process is gone (end of file); -9 for one killed before reporting."""
    data = b""
    while chunk := conn.recv(64):
        data += chunk
    return _HEAD.unpack(data)[0] if len(data) == _HEAD.size else -signal.SIGKILL


def _text(handle: Any) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


if __name__ == "__main__":
    serve(sys.argv[1])
