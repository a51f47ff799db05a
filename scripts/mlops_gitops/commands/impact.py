"""`mlops policy impact`: what a change to policies/ would deny among what is deployed now."""

from __future__ import annotations

import sys

import click

from ..core import output
from ..core.errors import ExitCode
from . import options
from .app import repo
from .policies import policy_group


@policy_group.command("impact")
@options.revisions
@options.output_format("table", "json", "markdown")
@click.option("--fail-on-impact", is_flag=True, help="Exit 1 when something deployed is newly denied.")
@click.pass_context
def policy_impact(
    ctx: click.Context, base: str | None, head: str, now: str | None, fmt: str, fail_on_impact: bool
) -> None:
    """What a change to policies/ would deny among what is deployed now.

    When --head changes .rego files under policies/, every manifest on --base (and the
    promotion facts of every version deployed there, and every workflow) is judged by the
    policies at --base and by those at --head. Lists what is newly denied, newly allowed, or
    denied for other reasons. Prints nothing on stdout (markdown) when no policy changed.
    """
    from ..gate import facts as gathering
    from ..gate import impact
    from ..registry.client import Registry

    loaded = repo(ctx)
    result = impact.assess(
        loaded,
        Registry(loaded),
        base or gathering.default_base(loaded.root),
        head,
        gathering.now_rfc3339(now),
    )
    if fmt == "json":
        output.emit_json("PolicyImpact", result.to_dict())
    if not result.changed:
        output.stderr.print("no policy changed between base and head: no impact to assess", highlight=False)
        return
    if fmt == "markdown":
        sys.stdout.write(impact.to_markdown(result))
    elif fmt == "table":
        output.table(
            "impact of the policy change",
            ["impact", "deployment", "file", "what differs (+ new, - gone)"],
            [
                (i.status, i.subject, i.filename, impact.differences(i))
                for i in result.impacts
                if i.status != "unchanged"
            ],
        )
        for note in result.notes:
            output.stderr.print(f"note: {note}", highlight=False)
    counts = result.to_dict()["counts"]
    output.stderr.print(
        f"{len(result.changed)} policy file(s) changed; {counts['newly denied']} newly denied, "
        f"{counts['newly allowed']} newly allowed, {counts['changed']} changed, "
        f"{counts['unchanged']} unchanged",
        highlight=False,
    )
    if fail_on_impact and counts["newly denied"]:
        sys.exit(int(ExitCode.FAILED))
