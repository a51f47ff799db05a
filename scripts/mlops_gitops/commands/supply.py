"""`mlops keys init` and `mlops verify`: who signs this project's models, and what an auditor
checks of one version (the reconciler's checks alone)."""

from __future__ import annotations

import sys

import click

from ..core import output
from ..core.errors import ExitCode
from . import options
from .app import main, repo


@main.group()
def keys() -> None:
    """The team's signing keys (OpenSSF model-signing, EC P-256)."""


@keys.command("init")
@click.option(
    "--name", default="team", show_default=True, help="The key's name in mlops.yaml's signing.keys."
)
@options.output_format()
@click.pass_context
def keys_init(ctx: click.Context, name: str, fmt: str) -> None:
    """Make the key pair `mlops register` signs with, once.

    The public half goes where mlops.yaml's `signing.keys.NAME` says (keys/NAME.pub): commit
    it, so every machine verifies with it. The private half stays in the state directory
    (mode 0600, git-ignored). Give it to CI as a secret, never in a file it commits:
    `gh secret set MLOPS_SIGNING_KEY < <private>`. On GitHub Actions, training signs keyless
    with the workflow's identity instead (signing.identities). Re-running keeps the pair.
    """
    from ..registry import signing

    loaded = repo(ctx)
    row = signing.init_key(loaded, name)
    if fmt == "json":
        output.emit_json("KeyInit", row)
        return
    output.table(
        f"signing key {name}",
        ["result", "public (commit it)", "private (a secret)", "fingerprint"],
        [(row["result"], row["public"], row["private"], row["fingerprint"][:23] + "…")],
    )
    if not row["listed"]:
        output.warn(f"mlops.yaml does not list it yet: add signing.keys.{name}: {row['public']}")
    if row["result"] == "created":
        output.stderr.print(
            f"next: git add {row['public']} && git commit; "
            f"gh secret set {signing.KEY_ENV} < {row['private']}",
            highlight=False,
        )


@main.command()
@click.argument("model")
@click.option("--version", "version", type=int, required=True, help="The version number.")
@options.environment(help="Only this environment's trust policy (default: every environment).")
@options.output_format()
@click.pass_context
def verify(ctx: click.Context, model: str, version: int, env: str | None, fmt: str) -> None:
    """Check one version as the reconciler would before serving it, and print each check.

    The artifact's sha256 against the one recorded at registration; its signature (every file,
    by whom) against each environment's trust policy in mlops.yaml; its SLSA provenance
    statement, signed the same way, naming exactly these files. Nothing is deployed or
    changed. Exit code 0 when every check passes, 1 when one fails (for runbooks and audits).
    """
    from ..registry import attestation
    from ..registry.client import Registry

    loaded = repo(ctx)
    loaded.require_model(model)
    envs = [loaded.require_environment(env)] if env else loaded.environments
    with output.stderr.status(f"verifying {model} v{version}"):
        rows = attestation.audit(Registry(loaded), model, version, envs)
    failed = [r for r in rows if r["result"] == "fail"]
    if fmt == "json":
        output.emit_json(
            "VerifyResult", {"model": model, "version": version, "passed": not failed, "checks": rows}
        )
    else:
        output.table(f"{model} v{version}", ["check", "result", "detail"], [tuple(r.values()) for r in rows])
    if failed:
        sys.exit(int(ExitCode.FAILED))
