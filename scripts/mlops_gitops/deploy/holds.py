"""Break-glass holds: what `mlops rollback --now` put in place stays until git agrees.

Argo CD turns automated sync off for an application it rolled back, until someone turns it on
again; otherwise the next sync would undo the rollback. Here a hold does that for one
(environment, model), and every reconciler of the environment honours it wherever it runs (the
deploy host's `--watch`, `reconcile.yml`, a laptop), because it lives in the registry they all
reach: the registered model's tag `mlops.hold.<env>` (tags.hold_tag), a JSON object

    {"routing": what runs under the hold, "asked": what git asked for when it was placed,
     "by", "at", "reason", "commit": the rollback's commit, "branch": where it waits for review}

A copy is kept in the state directory (state.hold_file) for when the registry cannot be reached;
when it can, the registry's word is the one that counts (a hold ended elsewhere ends here too).

While a hold stands the reconciler leaves that deployment alone and `plan`/`status` show it as
held. It ends by itself, recorded, once git asks for what runs (the revert was merged), or by
`mlops resume MODEL --env ENV`, recorded as such. Holds are facts, never decisions about
anything else: every other deployment reconciles as usual.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core import state
from ..core import tags as names
from ..core.errors import MlopsError
from ..core.records import RecordLog, actor, utcnow


@dataclass(frozen=True)
class Hold:
    model: str
    environment: str
    routing: dict[str, Any]  # Routing.to_dict() of what runs under the hold
    asked: dict[str, Any] | None  # what git asked for when it was placed
    by: str
    at: str
    reason: str
    commit: str = ""
    branch: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, text: str, model: str, env: str) -> Hold | None:
        try:
            data = json.loads(text)
            return cls(**{**data, "model": model, "environment": env})
        except (ValueError, TypeError):
            return None  # unreadable: never a reason to stop reconciling

    def said(self) -> str:
        from ..core.records import Routing

        keeps = Routing.from_dict(self.routing).text()
        return f"held by {self.by} at {self.at}: {self.reason} (keeps {keeps})"


class Holds:
    """Read, place and end holds: the registry's tag first, this machine's copy without it."""

    def __init__(self, root: Path, registry: Any):
        self.root = root
        self.registry = registry

    def _local(self, env: str, model: str) -> Hold | None:
        path = state.hold_file(self.root, env, model)
        return Hold.from_json(path.read_text(), model, env) if path.is_file() else None

    def get(self, env: str, model: str) -> Hold | None:
        if self.registry is None:  # the registry is known to be down
            return self._local(env, model)
        tag = names.hold_tag(env)
        listed = getattr(self.registry, "listed_tags", None)
        try:
            # a model the last listing did not find has no tags (and nothing to ask MLflow)
            tags = listed.get(model, {}) if listed is not None else self.registry.model_tags(model)
        except MlopsError:
            return self._local(env, model)  # the registry is down: what this machine knows
        if tag in tags:
            found = Hold.from_json(tags[tag], model, env)
            if found is not None:
                self._keep(found)
            return found
        self._forget(env, model)  # ended elsewhere (or never here)
        return None

    def place(self, hold: Hold) -> str:
        """Put the hold in place, everywhere it can go; a warning when only here."""
        self._keep(hold)
        log = RecordLog(self.root)
        log.note("hold", hold.environment, hold.model, {"action": "placed", **hold.to_dict()})
        try:
            self.registry.set_model_tags(
                hold.model, {names.hold_tag(hold.environment): json.dumps(hold.to_dict(), sort_keys=True)}
            )
        except MlopsError as exc:
            return f"the hold is on this machine only ({exc}); other reconcilers do not see it"
        return ""

    def end(self, env: str, model: str, how: str, reason: str = "", found: Hold | None = None) -> Hold | None:
        """End the hold (`how`: git-agrees or resume), recorded; None when there was none.
        `found`: the hold as the plan read it (not read again)."""
        found = found or self.get(env, model)
        if found is None:
            return None
        self.registry.delete_model_tag(model, names.hold_tag(env))
        self._forget(env, model)
        RecordLog(self.root).note(
            "hold",
            env,
            model,
            {
                "action": "ended",
                "how": how,
                "by": actor(),
                "at": utcnow(),
                "reason": reason,
                "placed_at": found.at,
                "placed_by": found.by,
                "routing": found.routing,
            },
        )
        return found

    def _keep(self, hold: Hold) -> None:
        """This machine's copy, written only when it differs (every plan reads holds)."""
        path = state.hold_file(self.root, hold.environment, hold.model)
        text = json.dumps(hold.to_dict(), indent=2, sort_keys=True)
        if path.is_file() and path.read_text() == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(".tmp")
        scratch.write_text(text)
        os.replace(scratch, path)

    def _forget(self, env: str, model: str) -> None:
        state.hold_file(self.root, env, model).unlink(missing_ok=True)
