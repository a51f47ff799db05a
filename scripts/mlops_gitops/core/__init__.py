"""The ground floor: what every concern shares, and nothing else.

    errors, output, yamlio, pages   one error type; printing; strict YAML; report pages
    tags, state, health             the registry's tag names; every path under .mlops; the
                                    reconciler's typed states (each family has one owner)
    config, scaffold                mlops.yaml, models, cards, manifests, the pipeline's
                                    sections, loaded and validated against schemas/; `model add`
    records, redact                 the append-only log of deployments, drift, feedback,
                                    decisions and holds; secrets kept out of every record
    gitinfo, github                 git, read and committed on a branch; GitHub through `gh`
    metrics                         evaluation metrics (the pipeline's and the reports')
    protocols, inference_log,       the wire formats a model server speaks and the identity it
    scrape                          proves; the inference log's one format, writer and reader;
                                    a server's /metrics read back

May import: nothing of the engine's (the standard library and third-party packages only).
"""
