"""Options that several verbs share, each defined once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..core import output

F = TypeVar("F", bound=Callable[..., Any])


def output_format(
    *choices: str, default: str | None = "table", help: str = "table for people, json for machines."
) -> Callable[[F], F]:
    """--output/-o: how the result is printed (bound to the parameter `fmt`)."""
    return click.option(
        "--output",
        "-o",
        "fmt",
        type=click.Choice(choices or output.OUTPUT_FORMATS),
        default=default,
        show_default=default is not None,
        help=help,
    )


def environment(
    required: bool = False, help: str = "Only this environment (default: all)."
) -> Callable[[F], F]:
    return click.option("--env", "env", required=required, default=None, help=help)


target = click.option(
    "--target",
    "target_kind",
    type=click.Choice(["local", "kserve"]),
    default=None,
    help="Deployment target (default: deploy.target in mlops.yaml).",
)


def out_dir(help: str) -> Callable[[F], F]:
    """--out DIR (bound to `out_dir`)."""
    return click.option(
        "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=help
    )


event = click.option(
    "--event",
    "event_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="GITHUB_EVENT_PATH",
    help="GitHub event payload (default: $GITHUB_EVENT_PATH).",
)
repository = click.option(
    "--repository", envvar="GITHUB_REPOSITORY", required=True, help="owner/name ($GITHUB_REPOSITORY)."
)
body_file = click.option(
    "--body-file", type=click.File("r"), required=True, help="Markdown body ('-' for stdin)."
)
policy_dirs = click.option(
    "--policy",
    "-p",
    "policy_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Policy directory (repeatable; default: policies/).",
)


def revisions(f: F) -> F:
    """--base, --head and --now: what a change is, and the time the policies judge at."""
    f = click.option(
        "--now", "now", default=None, envvar="MLOPS_NOW", help="The time policies judge at (RFC 3339)."
    )(f)
    f = click.option("--head", default="HEAD", show_default=True, help="Head revision.")(f)
    return click.option(
        "--base", default=None, help="Base revision (default: merge base with the PR's base or main)."
    )(f)


def data_files(help: str) -> Callable[[F], F]:
    """--data/-d: YAML/JSON files or directories merged into the policies' data.* (as OPA loads
    them), repeatable (bound to the parameter `data_files`)."""
    return click.option(
        "--data",
        "-d",
        "data_files",
        multiple=True,
        type=click.Path(exists=True, path_type=Path),
        help=help,
    )


def serve(server: Any, *closing: Callable[[], None]) -> None:
    """Serve until SIGTERM (a clean shutdown, from another thread) or ^C, then close the server
    and whatever `closing` names (`mlops collect`, `mlops webhook`)."""
    import signal
    import threading

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for close in closing:
            close()
