"""The engine's own tests (template-only: not copied into generated repositories).

They test the `mlops` engine exhaustively, each building its state in a temporary copy of this
template's generated files (`workflows.sandbox`, the `repo` and `registered` fixtures).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT, copy_files, git_commit_all, instance_files
from .workflows import with_key

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The GitHub event payloads the Makefile's act targets use too (a generated repository keeps them).
EVENTS = ROOT / "tests" / "fixtures" / "events"
CONFIG_PATHS = ("mlops.yaml", "templates")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Inside an act job (ACT is set) the tests that run act themselves would recurse forever:
    they are deselected there and run by the outer suite that started act."""
    if not os.environ.get("ACT"):
        return
    inner = [item for item in items if item.get_closest_marker("act")]
    if inner:
        config.hook.pytest_deselected(items=inner)
        items[:] = [item for item in items if not item.get_closest_marker("act")]


def chromium_path() -> str:
    """Debian's Chromium, for the browser tests; installed here (apt-get, as root) when missing.

    Playwright drives it with `executable_path`: its own browser download cannot run offline."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
        found = shutil.which("chromium")
        if found:
            return found
        pytest.fail(f"apt-get install chromium failed: {proc.stderr.strip()[-500:]}")
    pytest.fail("chromium is missing and cannot be installed here (expected `sudo apt-get install chromium`)")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """This repository's mlops.yaml and scaffold templates with one model, "churn", scaffolded.

    The model is made here rather than copied so the same tests run in every generated
    repository, whatever its first model is called.
    """
    from mlops_gitops.core.scaffold import add_model, load_for_add

    dest = tmp_path / "repo"
    copy_files([f for f in instance_files() if f.split("/", 1)[0] in CONFIG_PATHS], ROOT, dest)
    add_model(load_for_add(dest, "churn"), "churn")
    with_key(dest)
    return dest


def describe(repo: Path, model: str) -> None:
    """Write the model's words over its TODO placeholders, as its team does before production."""
    path = repo / "models" / model / "model.yaml"
    text = path.read_text()
    for key in ("description", "intended_use", "out_of_scope", "limitations", "ethical_considerations"):
        text = re.sub(
            rf"^(\s*){key}: 'TODO[^\n]*$",
            rf"\g<1>{key}: '{key} of {model}, written by its team'",
            text,
            flags=re.M,
        )
    assert "TODO" not in yaml.safe_load(text)["description"]
    path.write_text(text)


@pytest.fixture(scope="session")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated-repository copy whose registry (its default sqlite file) holds churn v1 and
    v2 (good), v3 (its predict raises) and v4 (answers once, then raises: it passes the server's
    load-time smoke test and fails after the switch). Tests copy it; the registry's artifact
    store is shared by this process's tests (each xdist worker builds its own: a test may alter
    an artifact for a moment, which another process must never see)."""

    from .registered import register_broken, register_version, registry_of
    from .workflows import sandbox

    repo = sandbox(tmp_path_factory.mktemp("registered") / "repo")  # the default rendering: churn, local
    describe(repo, "churn")
    with_key(repo)
    git_commit_all(repo, "Describe churn and add the team's key")
    assert register_version(repo, "churn", seed=7) == 1
    assert register_version(repo, "churn", seed=3) == 2
    assert register_broken(registry_of(repo), "churn") == 3
    assert register_broken(registry_of(repo), "churn", good_calls=1) == 4
    return repo


@pytest.fixture(scope="session")
def canaried(registered: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The registered repository with v5 (predictions shifted: every customer churns) and v6
    (slow) added, each with the registered metrics a version carries."""
    import json

    from .registered import FAIRNESS, SHIFTED, SLOW, register_code, registry_of

    dest = tmp_path_factory.mktemp("canaried") / "repo"
    shutil.copytree(registered, dest, symlinks=True)
    registry = registry_of(dest)
    assert register_code(registry, "churn", SHIFTED, "shifted") == 5
    assert register_code(registry, "churn", SLOW, "slow") == 6
    for version in (5, 6):
        registry.set_tags("churn", version, {"mlops.metrics": json.dumps({"roc_auc": 0.84, **FAIRNESS})})
    return dest


@pytest.fixture
def served(registered: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the registered repository; its model servers stopped at the end."""
    from ..conftest import run_mlops

    dest = tmp_path / "repo"
    shutil.copytree(registered, dest, symlinks=True)
    yield dest
    run_mlops("down", cwd=dest)
