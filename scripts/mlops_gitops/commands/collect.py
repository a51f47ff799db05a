"""`mlops collect`: KServe's inference logger received into the inference log (monitor.collect)."""

from __future__ import annotations

from pathlib import Path

import click

from ..core import output
from ..core.errors import MlopsError
from . import options
from .app import main, repo


@main.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 in a pod)."
)
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds a sender has to send a whole body (then 408), like nginx's client_body_timeout.",
)
@click.option(
    "--max-pending-mb",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Memory for requests waiting for their responses (raw bytes); the oldest go first.",
)
@click.option(
    "--manifests",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the environments/ an event is checked against are read, as they change (default: "
    "the repository; in the cluster, the git-sync sidecar's checkout of your main branch).",
)
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    help="Listen beyond loopback without MLOPS_COLLECT_TOKEN: only where a NetworkPolicy or a mesh "
    "already admits nothing but KServe's predictor pods (Argo CD / Flux apply the rendered "
    "InferenceServices, which never carry the token).",
)
@click.pass_context
def collect(
    ctx: click.Context,
    host: str,
    port: int,
    body_timeout: float,
    max_pending_mb: int,
    manifests: Path | None,
    allow_unauthenticated: bool,
) -> None:
    """Receive KServe's inference logger and write the inference log drift and feedback read.

    Each InferenceService the kserve target renders has `predictor.logger` (mode all) pointing
    here (mlops.yaml deploy.kserve.logger_url): its request and response CloudEvents are joined
    by ce-id and written, with the model, environment and version that answered, under the
    state directory (a volume in the cluster: deploy/collect/collect.yaml). Only a version its
    manifest routes now is taken (--manifests: a checkout kept current); a repeated ce-id is
    acknowledged, not counted again.

    With MLOPS_COLLECT_TOKEN set, every POST must carry it (Bearer, or Basic's password: the
    kserve target's kubectl apply puts it in the logger URL). GET /healthz and /metrics report
    what was received, joined, rejected and refused. Runs until stopped (SIGTERM ends it cleanly).
    """
    import ipaddress
    import os

    from ..core import state
    from ..monitor.collect import TOKEN_ENV, Collector, CollectServer, Routes

    token = os.environ.get(TOKEN_ENV, "")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not token and not loopback and not allow_unauthenticated:
        raise MlopsError(
            f"--host {host}: listening beyond loopback without {TOKEN_ENV} (expected the token in the "
            "environment, or --allow-unauthenticated where a NetworkPolicy admits only the predictors)"
        )
    loaded = repo(ctx)
    kserve = (loaded.project.get("deploy") or {}).get("kserve") or {}
    checkout = manifests or loaded.root  # as given: a checkout's `current` link is followed anew
    routes = Routes(checkout, checkout / str(kserve.get("output_dir") or "deploy/kserve"))
    collector = Collector(loaded.root, routes, max_pending_mb << 20)
    try:
        server = CollectServer((host, port), collector, token, body_timeout)
    except OSError as exc:
        raise MlopsError(f"--port {port}: cannot listen on {host} ({exc.strerror})") from None
    output.stderr.print(
        f"collecting on http://{host}:{server.server_address[1]} "
        f"({'token required' if token else 'no token'}; "
        f"inference logs under {state.state_dir(loaded.root) / 'inference'})",
        highlight=False,
    )
    options.serve(server, collector.close)
