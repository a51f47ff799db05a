"""What people read in the pack: the model card (models/<model>/card.md, filled in) and the
one-page summary (summary.html, the proof grouped by control)."""

from __future__ import annotations

import base64
from typing import Any

from ..core.config import CARD_NAMES, MODELS_DIR, Repo, outside
from ..core.errors import MlopsError
from ..gate.decisions import sha256
from .pack import Pack


def card_context(
    src: Any,
    lineage: dict[str, Any],
    metrics: dict[str, Any],
    decisions: list[dict[str, Any]],
    approvals: dict[str, Any],
    deployments: dict[str, Any],
    monitoring: dict[str, Any],
) -> dict[str, Any]:
    """The names a card is filled in with (config.CARD_NAMES, which `mlops validate` checks)."""
    this = deployments["this_version"]
    context = {
        "model": {"name": src.model, **src.definition},
        "version": {
            "number": src.number,
            "run_id": src.raw.run_id,
            "registered_at": lineage["registered_at"],
            "artifact_sha256": lineage["artifact_sha256"],
            "report_passed": metrics["report"]["passed"],
            "report_baseline": metrics["report"]["baseline"],
        },
        "lineage": {
            "commit": lineage["code"]["commit"],
            "dirty": lineage["code"]["dirty"],
            "data": lineage["data"],
            "device": lineage["training"]["device"],
            "learner": lineage["training"]["learner"],
            "runner": lineage["runner"]["name"],
        },
        "metrics": metrics["all"],
        "thresholds": metrics["thresholds"],
        "fairness": metrics["fairness"],
        "environment": src.env,
        "deployment": {
            "healthy_since": (deployments["registry_history"].get(src.env) or {}).get("healthy_since"),
            "deployments": this["deployments"],
            "rollbacks": this["rollbacks"],
        },
        "drift": monitoring["drift"],
        "performance": monitoring["performance"],
        "decisions": [{k: d.get(k) for k in ("environment", "outcome", "decided_at")} for d in decisions],
        "approvals": _approval_words(approvals["counted"]),
    }
    assert set(context) == set(CARD_NAMES)
    return context


def _approval_words(counted: dict[str, Any] | None) -> str:
    if not counted:
        return "none recorded (no GitHub review read by the gate)"
    words = f"{counted.get('count', 0)} ({', '.join(counted.get('approvers') or []) or 'none that count'})"
    left_out = [f"{e['user']}: {e['why']}" for e in counted.get("excluded") or []]
    return words + (f"; not counted: {'; '.join(left_out)}" if left_out else "")


# A card template is the team's file, rendered in the sandbox and under bounds, so that no
# template (a loop in a loop, a string multiplied by a billion) hangs `mlops evidence` or its job.
CARD_SECONDS = 10.0
CARD_BYTES = 1 << 20  # the template, and what it renders
_LARGEST = 1 << 20  # the longest string or list one `*` may make


class _Overrun(Exception):
    pass


def _sandbox() -> Any:
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import SandboxedEnvironment

    class CardSandbox(SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            sized = [v for v in (left, right) if isinstance(v, str | list | tuple)]
            counts = [v for v in (left, right) if isinstance(v, int)]
            if operator == "*" and sized and counts and len(sized[0]) * abs(counts[0]) > _LARGEST:
                raise SecurityError(f"a value of over {_LARGEST} items")
            if operator == "**" and isinstance(right, int) and abs(right) > 64:
                raise SecurityError(f"a power of {right}")
            return super().call_binop(context, operator, left, right)

    import jinja2

    return CardSandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _bounded(template: Any, context: dict[str, Any], display: str) -> str:
    """The template's text, stopped past CARD_BYTES or CARD_SECONDS (an interval timer on the
    main thread: Jinja's compiled loops are Python, which the timer's signal interrupts)."""
    import signal
    import threading

    def overrun(signum: int, frame: Any) -> None:
        raise _Overrun

    timed = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if timed:
        previous = signal.signal(signal.SIGALRM, overrun)
        signal.setitimer(signal.ITIMER_REAL, CARD_SECONDS)
    parts, size = [], 0
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > CARD_BYTES:
                raise MlopsError(f"{display}: renders over {CARD_BYTES} bytes (expected a card)")
            parts.append(chunk)
    except _Overrun:
        raise MlopsError(f"{display}: still rendering after {CARD_SECONDS:.0f} s (expected a card)") from None
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return "".join(parts)


def render_card(repo: Repo, model: str, context: dict[str, Any]) -> str:
    import jinja2
    from jinja2.exceptions import SecurityError

    path = repo.root / MODELS_DIR / model / "card.md"
    display = path.relative_to(repo.root).as_posix()
    if path.exists() and outside(repo.root, path):
        raise MlopsError(f"{display}: a link out of the repository (expected a file in it; never followed)")
    if not path.is_file():
        raise MlopsError(
            f"{display}: missing (expected the model card template; `mlops model add` writes one)"
        )
    if path.stat().st_size > CARD_BYTES:
        raise MlopsError(f"{display}: over {CARD_BYTES} bytes (expected a card template)")
    try:
        template = _sandbox().from_string(path.read_text(encoding="utf-8"))
        return _bounded(template, context, display)
    except jinja2.TemplateSyntaxError as exc:
        raise MlopsError(f"{display}:{exc.lineno}: {exc.message} (expected a Jinja template)") from None
    except jinja2.UndefinedError as exc:
        raise MlopsError(
            f"{display}: {exc.message} (expected one of: {', '.join(sorted(context))})"
        ) from None
    except (SecurityError, OverflowError, ArithmeticError, TypeError, ValueError) as exc:
        raise MlopsError(f"{display}: {type(exc).__name__}: {exc} (expected a card template)") from None


def render_summary(pack: Pack, context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlops_gitops", "html"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        finalize=lambda value: "—" if value is None else value,
    )
    plots = {
        path.rsplit("/", 1)[-1].removesuffix(".png"): "data:image/png;base64,"
        + base64.b64encode(data).decode()
        for path, data in sorted(pack.files.items())
        if path.startswith("report/") and path.endswith(".png")
    }
    return env.get_template("evidence.html.j2").render(
        pack=pack,
        lineage=pack.documents["lineage.json"],
        metrics=pack.documents["metrics.json"],
        deployments=pack.documents["deployments.json"],
        approvals=pack.documents["approvals.json"],
        monitoring=pack.documents["monitoring/summary.json"],
        decisions=pack.documents["policy/decisions.json"],
        controls=pack.controls(),
        card=context,
        plots=plots,
        files=[(p, sha256(d), len(d)) for p, d in sorted(pack.files.items())],
    )
