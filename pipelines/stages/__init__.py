"""Stage code of the example pipeline: ingest -> prepare -> train -> evaluate (see ../dvc.yaml)."""
