"""`mlops hydrate`: what the kserve target rendered, published on its own branch for Argo CD / Flux;
`mlops paths`: where this project's local state lies, for the Makefile and the workflows."""

from __future__ import annotations

from pathlib import Path

import click

from ..core import output
from ..core.errors import MlopsError
from . import options
from .app import main, repo


@main.command()
@options.environment(help="Only this environment's folder (default: every rendered one).")
@click.option(
    "--branch",
    default="rendered-manifests",
    show_default=True,
    help="The branch Argo CD / Flux syncs (never main).",
)
@click.option("--push", is_flag=True, help="Push the branch to origin (the publishing job's step).")
@click.option(
    "--from",
    "downloaded",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Take the folders from here, as CI artifacts bring them: <dir>/rendered-<env>/.",
)
@options.output_format()
@click.pass_context
def hydrate(
    ctx: click.Context, env: str | None, branch: str, push: bool, downloaded: Path | None, fmt: str
) -> None:
    """Commit the rendered InferenceServices (deploy.kserve.output_dir) onto BRANCH.

    main says what should run; BRANCH holds what the reconciler rendered of it (the model
    store's storageUri, the pinned runtime, the logger), one commit per change naming the main
    commit it came from: Argo CD's hydrated manifests. Only the environments rendered here are
    replaced; the working tree and the current branch never change; nothing changed, no commit.
    """
    from ..core.gitinfo import git
    from ..deploy.hydrate import hydrate as publish

    loaded = repo(ctx)
    settings = (loaded.project.get("deploy") or {}).get("kserve") or {}
    out = (loaded.root / str(settings.get("output_dir", "deploy/kserve"))).resolve()
    if not out.is_relative_to(loaded.root.resolve()):
        raise MlopsError(
            f"mlops.yaml: deploy.kserve.output_dir: {settings.get('output_dir')} is outside the repository "
            "(expected a folder inside it)"
        )
    if env is not None:
        loaded.require_environment(env)

    def folder(name: str) -> Path:
        return downloaded / f"rendered-{name}" if downloaded is not None else out / name

    envs = [env] if env else loaded.environments
    folders = {name: folder(name) for name in envs if folder(name).is_dir()}
    if not folders:
        where = downloaded if downloaded is not None else out.relative_to(loaded.root.resolve())
        raise MlopsError(f"{where}: nothing rendered (expected `mlops reconcile` to have rendered there)")
    source = git(loaded.root, "rev-parse", "HEAD", check=False) or "unknown"
    done = publish(loaded.root, folders, branch, push, source)
    if fmt == "json":
        output.emit_json("Hydrated", done.__dict__)
        return
    said = "unchanged" if not done.changed else f"committed {done.commit[:12]}"
    output.stdout.print(
        f"{done.branch}: {said} ({', '.join(done.environments)})" + (", pushed" if done.pushed else ""),
        highlight=False,
    )


@main.command()
@click.argument("name", required=False)
@options.environment(help="Also the environment's paths (evidence, drift reports, drift hand-offs).")
@click.option("--shell", is_flag=True, help="Print NAME=path lines quoted for a shell's eval.")
@options.output_format(
    "lines", "json", default="lines", help="lines (name=path, for $GITHUB_OUTPUT) or json."
)
@click.pass_context
def paths(ctx: click.Context, name: str | None, env: str | None, shell: bool, fmt: str) -> None:
    """Where this project's local state lies (.mlops/, or the state directory the environment
    names for what outlives a checkout), by name: the Makefile and the workflows take their
    paths from here, so the layout is spelled once. With NAME, just that path; else name=path
    lines, ready for $GITHUB_OUTPUT.

    Paths inside the repository are printed relative to it (as actions/upload-artifact and
    hashFiles take them); a state directory elsewhere, absolute.
    """
    import json
    import shlex

    from ..core import state

    loaded = repo(ctx)
    if env is not None:
        loaded.require_environment(env)
    root = loaded.root.resolve()
    found = {
        key: (path.relative_to(root) if path.resolve().is_relative_to(root) else path).as_posix()
        for key, path in state.named(loaded.root, env).items()
    }
    if name is not None:
        if name not in found:
            hint = "" if env else " (some need --env)"
            raise MlopsError(f"paths: no path named {name!r} (expected one of {', '.join(found)}){hint}")
        click.echo(found[name])
    elif fmt == "json":
        click.echo(json.dumps(found, indent=2))
    else:
        for key, value in found.items():
            click.echo(f"{key}={shlex.quote(value) if shell else value}")
