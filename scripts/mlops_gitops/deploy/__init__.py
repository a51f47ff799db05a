"""Deployments, after Argo CD and Argo Rollouts: git says what runs, the reconciler makes it so.

    promote, propose, rollback,     promotion and rollback as pull requests from the default
    hydrate                         branch; rendered manifests onto their branch
    holds                           break-glass: a hold every reconciler honours (registry tag)
    reconcile                       the loop: plan, verify (sha256, then the signature against
                                    the environment's trust policy), admit, apply, smoke or await
                                    health, alias, record, roll back by itself
    rollout, analysis               an analysed canary's steps, driven through the
                                    Reconciler's public `deploy`/`record`; its checks over the
                                    inference log
    history, probe                  what served when and why; the watching loop's /healthz
    events                          registry events (MLflow's webhooks, or a poll) that open
                                    promotions, by mlops.yaml's registry.promotions
    doctor                          what the surroundings lack (GitHub's settings, runners,
                                    the registry and its roles, the DVC remote, the model store)
    targets/                        local model servers (run as processes, never imported);
                                    KServe, with cluster health from Argo CD or kubectl, and
                                    what an in-cluster signature verifier needs (validation)

May import: core, registry. Never the server (serving/): a target starts it as a process.
"""
