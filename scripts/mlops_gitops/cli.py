"""The `mlops` command's entry point. The verbs live in `commands/`, one module per group:

models    validate, model add, model list
train     register, report
gate      promote, facts, check, gate, comment, policy test, policy impact
deploy    plan, reconcile, status, rollback, down
serving   predict, serve
publish   hydrate (the rendered manifests' branch, for Argo CD / Flux)
watch     drift, feedback, alert
collect   collect (KServe's inference logger, received)
evidence  evidence build, evidence verify
operate   history, compare
supply    keys init, verify (signatures and provenance)
"""

from __future__ import annotations

from .commands import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
