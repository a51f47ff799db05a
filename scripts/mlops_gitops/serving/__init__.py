"""The model server, and only it: `python -m mlops_gitops.serving.server`.

    server                          /predict, MLflow's /invocations, the Open Inference
                                    Protocol v2; routing, shadow, probation; the inference log
                                    written through core.inference_log
    metrics                         its /metrics (read back by core.scrape)

May import: core. Imported by commands/ (`mlops serve`) and benchmarks/ only.
"""
