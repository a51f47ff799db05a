"""mlops-gitops: the engine of a GitOps repository for machine-learning models.

One package per concern; each package's docstring says what it owns and what it may import,
and tests/engine/test_architecture.py holds the engine to it (after gitops-engine's pkg/sync,
pkg/health, pkg/diff and Flux's one controller per concern):

    core/        the ground floor: config, state, records, errors, output, tags, git, the wire
                 formats and the inference log
    registry/    MLflow: versions, lineage, reports, registration, the KServe model store
    gate/        the pull request's gate: facts, the conftest-compatible policy runner,
                 decisions, a policy change's impact
    deploy/      promotion and rollback as pull requests, break-glass holds, the reconciler,
                 analysed rollouts, history, targets/ (local, kserve)
    serving/     the model server and its /metrics (a process; only commands/ imports it)
    monitor/     traffic, KServe's logger received, drift, live performance, A/B comparison
    evidence/    the evidence pack: a gatherer per file, controls as data, the zip
    commands/    the `mlops` command, one module per verb group; only `cli` imports it
    cli, demo, ciconfig   entry points: `mlops`; `make demo`; CI's first job (PyYAML only)
"""

from __future__ import annotations

__version__ = "0.1.0"
