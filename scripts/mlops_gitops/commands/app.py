"""The root of the `mlops` command: its options, and the one place a user's error is printed."""

from __future__ import annotations

import platform
import sys
import traceback
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from .. import __version__
from ..core import output, redact
from ..core.config import Repo, find_root, load_repo
from ..core.errors import ExitCode, MlopsError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Group(click.Group):
    """Catches the one user-facing error type once and prints it as one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlopsError as exc:
            output.error(escape(str(exc)))
            sys.exit(int(exc.exit_code))
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # an internal error: one line, the traceback with --verbose
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            output.error(
                escape(f"internal error: {type(exc).__name__}: {exc} (run with --verbose for details)")
            )
            sys.exit(int(ExitCode.ERROR))


class DefaultGroup(Group):
    """A group whose first word, when it is not one of its commands, goes to `default`:
    `mlops evidence churn …` is `mlops evidence build churn …`."""

    default = "build"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


def root(ctx: click.Context) -> Path:
    """The repository root: --repo, $MLOPS_REPO, or the nearest directory above with mlops.yaml."""
    return find_root(ctx.find_root().obj.get("repo"))


def repo(ctx: click.Context, isolate: bool = False) -> Repo:
    """The repository's configuration, validated (one line naming the first problem otherwise).
    `isolate`: a deployment whose own files fail is marked invalid, and the rest is loaded."""
    return load_repo(root(ctx), isolate=isolate)


@click.group(cls=Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(
    __version__,
    "--version",
    "-V",
    prog_name="mlops",
    message=f"%(prog)s %(version)s (python {platform.python_version()})",
)
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MLOPS_REPO",
    help="Repository root (default: the nearest directory above holding mlops.yaml).",
)
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def main(ctx: click.Context, repo: Path | None, verbose: bool) -> None:
    """Run a model's life from a GitOps repository.

    Promotion is a pull request that edits environments/<env>/<model>.yaml; every verb
    reads its names and settings from mlops.yaml. Exit codes: 0 ok, 1 the check found
    problems, 2 the command could not run (bad usage, unreadable input).
    """
    redact.install()  # credentials in a URI or a secret's value never reach a line we print
    ctx.ensure_object(dict)
    ctx.obj.update(repo=repo, verbose=verbose)
