"""A new model in this repository, scaffolded in a scratch copy: `mlops model add` gives a model
the pipeline trains (its section of params.yaml), with its own words still to write, valid in
every environment; `--like` starts from an existing model's settings."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .conftest import run_mlops


def new_name(repo: Path) -> str:
    taken = {p.name for p in (repo / "models").iterdir()}
    return next(f"scaffolded-{i}" for i in range(100) if f"scaffolded-{i}" not in taken)


def test_a_new_model_is_known_to_the_pipeline_and_valid(scratch: Path) -> None:
    name = new_name(scratch)
    run_mlops("model", "add", name, cwd=scratch, check=True)
    assert run_mlops("validate", cwd=scratch).returncode == 0
    params = yaml.safe_load((scratch / "pipelines/params.yaml").read_text())["models"]
    assert {"data", "prepare", "train"} <= set(params[name])
    definition = yaml.safe_load((scratch / f"models/{name}/model.yaml").read_text())
    words = [definition["description"], *definition["card"].values()]
    assert all(text.startswith("TODO") for text in words), words  # never another model's words


def test_like_copies_an_existing_models_settings_not_its_words(scratch: Path) -> None:
    other = sorted(p.name for p in (scratch / "models").iterdir() if p.is_dir())[0]
    name = new_name(scratch)
    proc = run_mlops("model", "add", name, "--like", other, "--output", "json", cwd=scratch, check=True)
    assert json.loads(proc.stdout)["like"] == other
    assert run_mlops("validate", cwd=scratch).returncode == 0
    theirs = yaml.safe_load((scratch / f"models/{other}/model.yaml").read_text())
    ours = yaml.safe_load((scratch / f"models/{name}/model.yaml").read_text())
    for key in ("task", "risk_tier", "metrics", "drift", "fairness"):
        assert ours.get(key) == theirs.get(key), key
    assert ours["card"]["intended_use"].startswith("TODO")
    params = yaml.safe_load((scratch / "pipelines/params.yaml").read_text())["models"]
    assert params[name] == params[other]
