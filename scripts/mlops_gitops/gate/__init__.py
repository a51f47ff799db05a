"""The pull request's gate: policy over manifests and the facts of the proposed version.

    facts                           the policy input (conftest's `input`), built from the
                                    repository, the registry and GitHub
    policy                          the conftest-compatible runner on the real OPA engine
    decisions                       decisions kept in the registry and on disk
    impact                          what a policy change would decide differently
    checks                          the gate, whole (`mlops gate`)

May import: core, registry.
"""
