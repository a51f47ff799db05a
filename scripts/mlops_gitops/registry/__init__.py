"""The model registry (MLflow): every registry write and read of a version's making.

    client                          register with lineage, versions, aliases, tags, verified
                                    artifacts (sqlite read directly when it can)
    lineage                         what a version was made from (data, code, params, commit)
    report, registration            champion/challenger reports; register + report (+ the
                                    caller's promotion, passed in: the registry never deploys)
    modelstore                      where KServe fetches models (content-addressed)
    roles                           the team registry's users and their least permissions
    signing                         who made a model: the trust policy, model-signing's bundles
                                    signed and verified, what an environment admits
    attestation                     what is signed at registration (the files, the SLSA
                                    provenance statement), kept with the run; `mlops verify`

May import: core.
"""
