"""Watching what serves: every reader of the inference log but the rollout's analysis.

    traffic, collect                rows sent as a client (`mlops predict`); KServe's logger
                                    CloudEvents received into the inference log
    logsample, drift                the log streamed and sampled; data drift (evidently)
    feedback, compare               live performance from ground truth; two versions side by
                                    side with confidence intervals (`--record` for the gate)

May import: core, registry, deploy.
"""
