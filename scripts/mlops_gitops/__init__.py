"""mlops-gitops: the engine of a GitOps repository for machine-learning models.

One module per concern; a module imports only those above it in this list (lower layers
first), and nothing imports `commands/` but `cli` (tests/engine/test_architecture.py holds
the engine to it):

    errors, output, yamlio, pages   one error type; printing; strict YAML; report pages
    tags, state, health             the registry's tag names; every path under .mlops; the
                                    reconciler's typed states (each family has one owner)
    config                          mlops.yaml, models, cards, manifests, the pipeline's
                                    sections: loaded and validated against schemas/
    gitinfo, github, propose        git (read, commit on a branch); GitHub through `gh`;
                                    a change proposed as a branch and a pull request
    metrics, lineage, records       evaluation metrics; what a version was made from; the
                                    append-only log of deployments, drift, feedback, decisions,
                                    holds, and a deployment's whole routing (what a rollback
                                    returns to)
    registry                        MLflow: register with lineage, versions, aliases, verified
                                    artifacts
    report, registration            champion/challenger reports; register + report + propose
    facts, policy, decisions, gate  the policy input; conftest-compatible runner; decisions
                                    kept; the pull request's gate, whole
    impact, scaffold, promote,      a policy change's impact; `model add`; promotion and
    rollback, holds                 rollback as pull requests, from the default branch; a
                                    break-glass hold every reconciler honours (in the registry)
    protocols, serve                the wire formats (/predict, MLflow's /invocations, the Open
                                    Inference Protocol v2); the model server
    modelstore, targets/            where KServe fetches models (content-addressed); deployment
                                    targets (local; kserve, with cluster health from Argo CD or
                                    kubectl)
    reconcile, probe, hydrate       the reconcile loop (plan, verify, admit, apply, smoke or
                                    await health, alias, record); the watching reconciler's
                                    /healthz and /metrics; rendered manifests onto their branch
    traffic, collect                rows sent as a client; KServe's logger CloudEvents received
    logsample, drift, feedback      the inference log streamed and sampled; data drift; live
                                    performance
    evidence/                       the evidence pack: a gatherer per file, controls as data,
                                    rendering, the zip and its verification
    commands/, cli                  the `mlops` command: one module per verb group
    demo, ciconfig                  `make demo`; CI's first job (PyYAML only)
"""

from __future__ import annotations

__version__ = "0.1.0"
