"""Target `local`: each (environment, model) is a model server process on this machine.

State lives in `state.server_file` (<model>.json: host, port, pid and the process's start
time), with the spec the server started from and its reload token (mode 0600) beside it. The
server's own `/health` is the truth about what runs, but only once the server has proven it is
ours: it answers a fresh challenge with an HMAC under the token, so whatever else listens on a
recorded port after a crash is never sent the token, never recorded healthy and never signaled;
and a pid is signaled only while its start time is the one recorded (a reused pid is another
process). A new version is loaded beside the old one inside the
running server and swapped in only after its smoke prediction: requests never see a gap,
and a version that fails keeps the old one serving.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...core import output, redact, yamlio
from ...core.config import LOOPBACK
from ...core.health import Health, Reason
from ...core.protocols import identity_proof
from ...core.state import NAME, inference_log, server_file, servers_dir
from .base import DeployFailed, Desired, Live

if TYPE_CHECKING:
    from ...registry.client import Verified

# What a model server's process inherits. It runs the model's own code (whatever a registered
# version's pyfunc imports), so it gets no credential: the reconciler fetched and verified the
# artifact, and the server reads it from disk, needing no registry, cloud or GitHub access. Only
# these names pass (the locale, the interpreter, the accelerator's and the math libraries'
# settings, this project's own MLOPS_* knobs), and none whose name says it is a secret.
SERVER_ENV = re.compile(
    r"PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|TZ|TERM|TMPDIR|VIRTUAL_ENV|LD_LIBRARY_PATH|NO_COLOR|DO_NOT_TRACK"
    r"|PYTHON[A-Z0-9_]*|LC_[A-Z_]+|CUDA_[A-Z0-9_]+|NVIDIA_[A-Z0-9_]+|OMP_[A-Z0-9_]+|MKL_[A-Z0-9_]+"
    r"|OPENBLAS_[A-Z0-9_]+|MLOPS_[A-Z0-9_]+|MLFLOW_DISABLE_TELEMETRY"
)


def server_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of `environ` a model server may see (SERVER_ENV, no secret's name)."""
    return {k: v for k, v in environ.items() if SERVER_ENV.fullmatch(k) and not redact.secret_name(k)}


READY_TIMEOUT = float(os.environ.get("MLOPS_READY_TIMEOUT", "120"))
STOP_TIMEOUT = 15.0


def http_json(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, Any]:
    """(status, JSON body); status 0 when nothing answers."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (OSError, ValueError):
        return 0, None


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class LocalTarget:
    kind = "local"
    observes_only = False  # it checks health itself: the smoke test predicts on every version

    def __init__(self, root: Path, settings: dict[str, Any]):
        self.root = root
        self.host = str(settings.get("host", "127.0.0.1"))
        if settings.get("allow_remote") and not LOOPBACK.match(self.host):
            output.warn(
                f"deploy.local.host {self.host}: the model servers answer anyone who can reach this "
                "host (allow_remote: true); put them behind a firewall or an authenticating proxy"
            )
        # None: each server gets a port the OS finds free when it first starts (recorded in its
        # state file and deployment records), so projects on one host never collide.
        self.base_port: int | None = int(settings["base_port"]) if settings.get("base_port") else None

    # -- state ---------------------------------------------------------------------------
    def _state_path(self, env: str, model: str) -> Path:
        return server_file(self.root, env, model)

    def _read_state(self, env: str, model: str) -> dict[str, Any] | None:
        path = self._state_path(env, model)
        try:
            loaded: dict[str, Any] = json.loads(path.read_text())
            return loaded
        except (OSError, ValueError):
            return None

    def _write_state(self, env: str, model: str, state: dict[str, Any]) -> None:
        yamlio.write_atomic(self._state_path(env, model), json.dumps(state, indent=2, sort_keys=True) + "\n")

    def _token(self, env: str, model: str) -> str:
        return server_file(self.root, env, model, ".token").read_text().strip()

    def running(self) -> list[tuple[str, str]]:
        base = servers_dir(self.root)
        # <model>.json only: <model>.spec.json beside it is the server's own input
        return (
            sorted(
                (p.parent.name, p.stem)
                for p in base.glob("*/*.json")
                if NAME.match(p.stem) and NAME.match(p.parent.name)  # not .spec.json; only names
            )
            if base.exists()
            else []
        )

    def url(self, state: dict[str, Any]) -> str:
        return f"http://{state['host']}:{state['port']}"

    def _allocate_port(self, env: str, model: str) -> int:
        if self.base_port is None:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((self.host, 0))
                return int(sock.getsockname()[1])
        taken = set()
        for other_env, other_model in self.running():
            other = self._read_state(other_env, other_model)
            if other and (other_env, other_model) != (env, model):
                taken.add(int(other["port"]))
        port = self.base_port
        while port in taken:
            port += 1
        return port

    # -- interface -----------------------------------------------------------------------
    def _health(self, env: str, model: str, url: str) -> tuple[int, Any, bool]:
        """(status, body, proven): /health with a fresh challenge; proven when the answer is the
        HMAC that only the server started with this deployment's token can compute."""
        challenge = secrets.token_hex(16)
        status, body = http_json("GET", f"{url}/health", headers={"X-Mlops-Challenge": challenge}, timeout=3)
        if status == 0 or not isinstance(body, dict):
            return status, body, False
        try:
            token = self._token(env, model)
        except OSError:
            return status, body, False
        pid = body.get("pid")
        expected = identity_proof(token, challenge, model, env, pid) if isinstance(pid, int) else ""
        proven = bool(expected) and hmac.compare_digest(str(body.get("proof", "")), expected)
        return status, body, proven

    def observe(self, env: str, model: str) -> Live:
        state = self._read_state(env, model)
        if state is None:
            return Live(model, env, health=Health.MISSING, detail="no server")
        url = self.url(state)
        status, body, proven = self._health(env, model, url)
        if status == 0 or not isinstance(body, dict):
            return Live(model, env, health=Health.MISSING, url=url, detail=f"no server answers on {url}")
        if not proven:  # a look-alike, or another deployment's server: never sent the token or signaled
            return Live(
                model,
                env,
                health=Health.DEGRADED,
                url=url,
                detail=f"{url} answers, but not as the server this target started for {model} in {env} "
                "(it could not prove it holds this deployment's token)",
                extra={"foreign": True},
            )
        if body["pid"] != state.get("pid") or not state.get("started"):
            # a reconciler killed before it wrote the pid: adopt the server, now that it is proven
            state.update(pid=body["pid"], started=process_start(body["pid"]))
            self._write_state(env, model, state)
        routing = tuple((int(t["version"]), int(t["percent"])) for t in body.get("traffic") or [])
        health = {"ready": Health.HEALTHY, "loading": Health.PROGRESSING}.get(
            body.get("status", ""), Health.DEGRADED
        )
        extra: dict[str, Any] = {"pid": body.get("pid")}
        detail = body.get("error") or ""
        probation = body.get("probation") or {}
        failed = {int(v): n for v, n in (probation.get("failed_requests") or {}).items() if n}
        if failed and health == Health.HEALTHY:  # failures the previous version covered count
            health = Health.DEGRADED
            detail = "; ".join(
                f"v{v} failed {n} client request(s) since the switch (the previous version answered)"
                for v, n in sorted(failed.items())
            )
            # what served before the switch: where a rollback goes
            extra["fallback"] = tuple((int(f["version"]), int(f["percent"])) for f in probation["fallback"])
        return Live(
            model,
            env,
            routing=routing,
            shadow=body.get("shadow"),
            health=health,
            url=url,
            detail=detail,
            extra=extra,
        )

    def _spec(self, desired: Desired, artifacts: dict[int, Verified]) -> dict[str, Any]:
        return {
            "model": desired.model,
            "environment": desired.environment,
            "primary": [
                {"version": v, "path": str(artifacts[v].path), "percent": p} for v, p in desired.routing
            ],
            "shadow": {"version": desired.shadow, "path": str(artifacts[desired.shadow].path)}
            if desired.shadow
            else None,
            "log": str(inference_log(self.root, desired.environment, desired.model)),
        }

    def admit(self, desired: Desired, artifacts: dict[int, Verified]) -> None:
        """Nothing to refuse: the server loads models with this environment's own MLflow."""

    def deploy(self, desired: Desired, artifacts: dict[int, Verified]) -> Live:
        env, model = desired.environment, desired.model
        spec = self._spec(desired, artifacts)
        state = self._read_state(env, model)
        live = self.observe(env, model)
        if (
            state is not None
            and live.health in (Health.HEALTHY, Health.DEGRADED)
            and not live.extra.get("foreign")
        ):
            status, body = http_json(
                "POST",
                f"{self.url(state)}/-/reload",
                spec,
                {"X-Mlops-Token": self._token(env, model)},
                timeout=READY_TIMEOUT,
            )
            if status == 200:
                return self.observe(env, model)
            if status != 0:
                error = (body or {}).get("error", f"HTTP {status}")
                kept = (body or {}).get("versions") or [v for v, _ in live.routing]
                raise DeployFailed(
                    Reason.HEALTH_CHECK_FAILED,
                    f"{model} in {env}: {error}"
                    + (f" (v{', v'.join(map(str, kept))} kept serving)" if kept else ""),
                )
        if live.health == Health.PROGRESSING:
            self.remove(env, model)
        return self._start(desired, spec, state)

    def _start(self, desired: Desired, spec: dict[str, Any], state: dict[str, Any] | None) -> Live:
        env, model = desired.environment, desired.model
        port = int(state["port"]) if state else self._allocate_port(env, model)
        if not port_free(self.host, port) and self.base_port is None:
            port = self._allocate_port(env, model)  # its old port is taken now: another free one
        if not port_free(self.host, port):
            raise DeployFailed(
                Reason.TARGET_UNAVAILABLE,
                f"{model} in {env}: {self.host}:{port} is in use by another process (expected it free; "
                "stop that process or change deploy.local.base_port in mlops.yaml)",
            )
        folder = self._state_path(env, model).parent
        folder.mkdir(parents=True, exist_ok=True)
        token_file = server_file(self.root, env, model, ".token")
        if not token_file.exists():  # the reload token: only this user can read it
            token_file.touch(mode=0o600)
            token_file.write_text(secrets.token_hex(16))
        spec_file = server_file(self.root, env, model, ".spec.json")
        yamlio.write_atomic(spec_file, json.dumps(spec, indent=2))
        log_file = server_file(self.root, env, model, ".log")
        new_state: dict[str, Any] = {"host": self.host, "port": port, "pid": None}
        self._write_state(env, model, new_state)  # the port is ours before the process exists
        scripts = str(Path(__file__).resolve().parents[3])
        child_env = {
            **server_environment(os.environ),
            "PYTHONPATH": os.pathsep.join(p for p in (scripts, os.environ.get("PYTHONPATH", "")) if p),
        }
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlops_gitops.serving.server",
                    "--spec",
                    str(spec_file),
                    "--host",
                    self.host,
                    "--port",
                    str(port),
                    "--token-file",
                    str(token_file),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=child_env,
                cwd=self.root,
                start_new_session=True,  # outlives the reconciler, which may be killed
            )
        new_state.update(pid=process.pid, started=process_start(process.pid))
        self._write_state(env, model, new_state)
        url = self.url(new_state)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                reason = Reason.TARGET_UNAVAILABLE if code == 3 else Reason.HEALTH_CHECK_FAILED
                raise DeployFailed(reason, f"{model} in {env}: the server exited ({code}): {_tail(log_file)}")
            status, body, proven = self._health(env, model, url)
            if status == 200 and proven:
                return self.observe(env, model)
            if proven and body.get("status") == "failed":
                self._stop(process.pid, new_state["started"])
                raise DeployFailed(Reason.HEALTH_CHECK_FAILED, f"{model} in {env}: {body.get('error')}")
            time.sleep(0.2)
        self._stop(process.pid, new_state["started"])
        raise DeployFailed(
            Reason.HEALTH_CHECK_FAILED,
            f"{model} in {env}: not ready after {READY_TIMEOUT:.0f}s: {_tail(log_file)}",
        )

    def smoke(self, desired: Desired, examples: dict[int, list[dict[str, Any]]]) -> None:
        """Readiness, the versions it reports, and one prediction per version over HTTP."""
        state = self._read_state(desired.environment, desired.model)
        if state is None:
            raise DeployFailed(
                Reason.HEALTH_CHECK_FAILED, f"{desired.model} in {desired.environment}: no server"
            )
        url = self.url(state)
        status, body, proven = self._health(desired.environment, desired.model, url)
        if status != 200 or not proven:
            raise DeployFailed(
                Reason.HEALTH_CHECK_FAILED,
                f"{desired.model} in {desired.environment}: /health answered {status or 'nothing'}"
                + ("" if proven else " (and could not prove it is this deployment's server)"),
            )
        served = tuple((int(t["version"]), int(t["percent"])) for t in body.get("traffic") or [])
        if served != desired.routing or body.get("shadow") != desired.shadow:
            raise DeployFailed(
                Reason.HEALTH_CHECK_FAILED,
                f"{desired.model} in {desired.environment}: serves {served} (expected {desired.routing})",
            )
        for version in desired.versions:
            records = examples.get(version) or []
            if not records:
                raise DeployFailed(
                    Reason.HEALTH_CHECK_FAILED,
                    f"{desired.model} v{version} in {desired.environment}: no input example to smoke-test it "
                    "on (expected one logged with the model)",
                )
            status, answer = http_json(
                "POST",
                f"{url}/predict",
                {"dataframe_records": records[:1]},
                {
                    "X-Mlops-Version": str(version),
                    "X-Mlops-Token": self._token(desired.environment, desired.model),
                },
                timeout=30,
            )
            if status != 200 or not isinstance(answer, dict) or answer.get("version") != version:
                error = (answer or {}).get("error") if isinstance(answer, dict) else None
                raise DeployFailed(
                    Reason.HEALTH_CHECK_FAILED,
                    f"{desired.model} v{version} in {desired.environment}: smoke prediction answered "
                    f"{status or 'nothing'}: {error or answer}",
                )
        self._probation_check(desired, url)  # once, after the smoke predictions: what clients met

    def _probation_check(self, desired: Desired, url: str) -> None:
        """A request a new version failed since the switch (answered by the previous one, so no
        client saw it) counts against it: the deployment is not healthy."""
        _, body, proven = self._health(desired.environment, desired.model, url)
        probation = (body or {}).get("probation") if proven else None
        for version, count in sorted(((probation or {}).get("failed_requests") or {}).items()):
            if int(version) in desired.versions and count:
                raise DeployFailed(
                    Reason.HEALTH_CHECK_FAILED,
                    f"{desired.model} v{version} in {desired.environment}: failed {count} client "
                    "request(s) since the switch (the previous version answered them)",
                )

    def _stop(self, pid: int | None, started: str | None = None) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT: only the process that pid named when this
        target started it (or proved it), never one that reused the number."""
        if not pid or started is None or process_start(pid) != started:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        return
            except ProcessLookupError:
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def stop_all(self, env: str | None = None) -> list[str]:
        """Stop every server this target started (in `env`, or all); "env/model" of each."""
        stopped = []
        for environment, model in self.running():
            if env is None or environment == env:
                self.remove(environment, model)
                stopped.append(f"{environment}/{model}")
        return stopped

    def remove(self, env: str, model: str) -> None:
        state = self._read_state(env, model)
        if state is None:
            return
        live = self.observe(env, model)
        state = self._read_state(env, model) or state  # observe adopts a proven server's pid
        if live.extra.get("foreign"):  # never stop a process that is not ours
            output.warn(f"{env}/{model}: {live.detail}; not signaled")
        else:
            self._stop(state.get("pid"), state.get("started"))
        for suffix in (".json", ".spec.json", ".token"):
            with contextlib.suppress(FileNotFoundError):
                server_file(self.root, env, model, suffix).unlink()


def process_start(pid: int) -> str | None:
    """When process `pid` started, as the kernel tells it (Linux: /proc/<pid>/stat's start time
    in clock ticks since boot; elsewhere `ps -o lstart=`); None when no such process. With the
    pid, it names one process: a pid reused by another process has another start."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return "proc:" + stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, ValueError):
        pass
    if Path("/proc/self/stat").exists():
        return None  # Linux, and no such process
    found = subprocess.run(["ps", "-o", "lstart=", "-p", str(int(pid))], capture_output=True, text=True)
    return "ps:" + found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else None


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    errors = [line for line in text if line.startswith("error:")]
    return (errors[-1] if errors else " | ".join(text[-lines:]))[:500]
