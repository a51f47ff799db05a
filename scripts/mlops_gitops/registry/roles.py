"""The team registry's roles: one MLflow user per machine's job, each with the least of MLflow's
permissions (READ, USE, EDIT, MANAGE) on the project's experiment and on each registered model.
scripts/registry-host/team_registry.py grants them; `mlops doctor` checks them.

    trainer      EDIT on the experiment (runs, metrics, the model's files) and on every model
                 (new versions and their tags)
    gate         READ on every model; EDIT on the experiment, to keep its decisions beside each
                 version's run (`mlops gate --record`)
    reconciler   EDIT on every model (aliases, holds and drift tags); READ on the experiment
"""

from __future__ import annotations

ROLES: dict[str, dict[str, str]] = {
    "trainer": {"experiment": "EDIT", "models": "EDIT"},
    "gate": {"experiment": "EDIT", "models": "READ"},
    "reconciler": {"experiment": "READ", "models": "EDIT"},
}
