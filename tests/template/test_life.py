"""A generated repository, lived in: one project with non-default answers and a model that is not
`churn`, driven by the product's own verbs through a model's whole life, with the repository's
own checks run after every step, and its README's first walk run exactly as written. The checks:
in every state, its validation and the fast tests that read what the life's verbs change (the
configuration, the manifests, the models: `STATE_TESTS`); in the last state, its pr.yml under
act, whose jobs are the whole `make test` and more. The rest of its tests read what no verb
changes (the policies' own tests, the workflows' linters, the code's types and lint, the fork
server) or hold a whole life of their own (the slow tests), so they run once, there, in the
state that holds everything the life added.

The life: generate; the README's walk (train, register, promote to staging, the gate, merge,
reconcile, a prediction, traffic, drift, feedback, the evidence pack); production after the soak
with two approvals; a second model (`mlops model add --like`) trained; a canary split and a
shadow; a manifest exception; `mlops rollback`; a new version registered and promoted.

GitHub's API cannot be reached from here: a stand-in `gh` (a script on PATH, below) answers the
two calls the gate makes, `gh auth status` and the pull request's reviews. Everything else is
real: cookiecutter, git, DVC, the MLflow registry (sqlite), OPA, the model servers, act.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import ROOT, base_env, run_mlops
from ..engine.workflows import environment, shared_tools
from .conftest import BIN, baked

pytestmark = [pytest.mark.slow, pytest.mark.act]

ANSWERS = {
    "project_name": "Claims Triage Desk",
    "project_slug": "claims-desk",
    "description": "Routes insurance claims to adjuster queues; every model promoted by pull request.",
    "model_name": "claim-severity",
    "model_purpose": "Route each new insurance claim to the adjuster queue for its expected severity",
    "owning_team": "@insure-co/claims-ml",
    "production_approvers": "@insure-co/model-risk, @insure-co/claims-leads",
    "gpu_runner_labels": "self-hosted, linux, gpu-l4",
    "python_version": "3.12",
}
MODEL, SECOND = ANSWERS["model_name"], "fraud-signal"
WORDS = {
    "intended_use": "Queue order for adjusters, who decide every claim themselves",
    "out_of_scope": "Paying, denying or pricing a claim",
    "limitations": "Trained on the synthetic example table; not validated on real claims",
    "ethical_considerations": "Fairness gaps by age are measured at every evaluation",
}
# A stand-in for GitHub's CLI and API (they cannot be reached from here): authenticated, the
# pull request (its head: pull.json) has two approving reviews of its head (and one by its own
# author, which must not count), and the two owning teams have one member each. Anything else it
# is asked fails loudly.
FAKE_GH = """#!/bin/sh
[ "$1 $2" = "auth status" ] && exit 0
for last in "$@"; do :; done
if [ "$1" = "api" ] && [ "$last" = "repos/insure-co/claims-desk/pulls/7/reviews" ]; then
  case " $* " in
    *" --slurp "*) printf '['; cat "$(dirname "$0")/reviews.json"; printf ']' ;;
    *) cat "$(dirname "$0")/reviews.json" ;;
  esac
  exit 0
fi
if [ "$1" = "api" ] && [ "$last" = "repos/insure-co/claims-desk/pulls/7" ]; then
  case " $* " in
    *" --slurp "*) printf '['; cat "$(dirname "$0")/pull.json"; printf ']' ;;
    *) cat "$(dirname "$0")/pull.json" ;;
  esac
  exit 0
fi
if [ "$1" = "api" ] && [ "$last" = "orgs/insure-co/teams/model-risk/members" ]; then
  echo '[[{"login": "risk-officer"}]]'; exit 0
fi
if [ "$1" = "api" ] && [ "$last" = "orgs/insure-co/teams/claims-leads/members" ]; then
  echo '[[{"login": "claims-lead"}]]'; exit 0
fi
echo "gh stand-in: not answered: $*" >&2
exit 1
"""
REVIEWS = [
    {"user": {"login": "risk-officer"}, "state": "APPROVED"},
    {"user": {"login": "claims-lead"}, "state": "APPROVED"},
    {"user": {"login": "data-scientist"}, "state": "APPROVED"},
]


# The generated repository's fast tests that read what the life's verbs change (selected by name,
# so a test renamed in the template fails the `passed` count below rather than going unrun).
STATE_TESTS = (
    "tests/test_repository.py tests/test_scaffold.py"
    " -k 'configuration_is_valid or manifests_and_workflows or test_scaffold'"
)


class Life:
    """The generated repository, and the commands a team runs in it."""

    def __init__(self, project: Path, tools: Path, fake_bin: Path):
        self.project = project
        self.fake_bin = fake_bin
        self.env = {**base_env(), "PYTHONPATH": str(project / "scripts"), "TOOLS_CACHE": str(tools)}
        self.env["PATH"] = os.pathsep.join([str(fake_bin), str(project / ".venv" / "bin"), self.env["PATH"]])
        self.checked: list[str] = []
        self.pending: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def sh(self, script: str, ok: tuple[int, ...] = (0,), **extra: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=self.project,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert proc.returncode in ok, (
            f"{script}\nexited {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        )
        return proc

    def cli(self, *args: str, ok: tuple[int, ...] = (0,), **extra: str) -> subprocess.CompletedProcess[str]:
        """`mlops ARGS` in the repository (`run_mlops`: on the repository's own engine, through
        PYTHONPATH, forked from the tests' fork server), its exit code checked."""
        found = run_mlops(*args, cwd=self.project, env_extra={**self.env, **extra}, timeout=1800)
        said = f"{found.stdout[-6000:]}\n{found.stderr[-6000:]}"
        assert found.returncode in ok, f"mlops {' '.join(args)}\nexited {found.returncode}:\n{said}"
        return found

    def mlops(self, *args: str, ok: tuple[int, ...] = (0,), **extra: str) -> Any:
        """`mlops ARGS --output json` in the repository, its answer parsed."""
        return json.loads(self.cli(*args, "--output", "json", ok=ok, **extra).stdout)

    def answer_reviews(self, head: str, reviews: list[dict[str, Any]]) -> None:
        """What the GitHub stand-in answers for pull request 7: its head, and its reviews."""
        (self.fake_bin / "pull.json").write_text(json.dumps({"number": 7, "head": {"sha": head}}))
        (self.fake_bin / "reviews.json").write_text(json.dumps(reviews))

    def commit(self, message: str, *paths: str) -> None:
        self.sh(
            f"git add {' '.join(map(_quote, paths)) or '--all'} && git commit --quiet -m {_quote(message)}"
        )

    def merge(self, branch: str, *trailers: str) -> None:
        notes = "".join(f" -m {_quote(t)}" for t in trailers)
        message = _quote(f"Merge {branch}")
        self.sh(f"git switch --quiet main && git merge --quiet --no-ff -m {message}{notes} {branch}")

    def edit_manifest(self, env: str, model: str, **fields: Any) -> None:
        path = self.project / "environments" / env / f"{model}.yaml"
        manifest = yaml.safe_load(path.read_text())
        manifest.update(fields)
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))

    def check(self, stage: str, act: bool = False) -> None:
        """The repository's own checks in its current state: its validation and the fast tests
        that read the state (`STATE_TESTS`); or its pr.yml under act, asserting that every job ran
        and passed. pr.yml's jobs are `make lint typecheck`, `make validate`, `make policy` and
        `make unit`: all of `make test` and more.

        Checks other than act's run on a copy of the repository as it is now, in the background,
        while the life goes on (its next steps change the repository, never the copy);
        `checks_passed` waits for them and asserts each one."""
        self.checked.append(stage)
        if act:
            self.act_pr(stage)
            return
        copy = self.project.parent / f"check-{len(self.checked)}" / self.project.name
        copy.parent.mkdir()
        subprocess.run(["cp", "-a", str(self.project), str(copy)], check=True)
        script = f"make validate && make unit PYTEST_ARGS=\"-m 'not slow' -n0 {STATE_TESTS}\""
        log = copy.parent / "log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=copy,
                # a handful of light commands: fresh interpreters cost less than the fork
                # server's imports (its preload is some 6 s of CPU, these commands 0.5 s each)
                env={**self.env, "PYTHONPATH": str(copy / "scripts"), "MLOPS_TESTS_FORK": "0"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.pending.append((stage, proc, log))

    def checks_passed(self) -> None:
        for stage, proc, log in self.pending:
            code = proc.wait(timeout=1800)
            text = log.read_text(errors="replace")
            assert code == 0, f"{stage}: the repository's checks exited {code}:\n{text[-8000:]}"
            assert re.search(r"\b4 passed", text), f"{stage}: expected the 4 state tests:\n{text[-3000:]}"
        self.pending.clear()

    def stop_checks(self) -> None:
        for _, proc, _ in self.pending:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def act_pr(self, stage: str) -> None:
        env = {k: v for k, v in self.env.items() if k not in ("VENV", "PYTHONPATH")}
        proc = subprocess.run(
            [
                str(BIN / "act"),
                "pull_request",
                "-W",
                ".github/workflows/pr.yml",
                "-e",
                "tests/fixtures/events/pull_request.json",
                "--json",
            ],
            cwd=self.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        jobs = list(yaml.safe_load((self.project / ".github/workflows/pr.yml").read_text())["jobs"])
        results = {job: None for job in jobs}
        log = []
        for line in (proc.stdout + proc.stderr).splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            log.append(f"[{entry.get('jobID', '')}] {entry.get('msg', '')}")
            if "jobResult" in entry:
                results[entry["jobID"]] = entry["jobResult"]
        assert results == dict.fromkeys(jobs, "success"), f"{stage}: pr.yml under act:\n" + "\n".join(
            log[-200:]
        )
        text = "\n".join(log)
        # every job found the tool set through the setup action, with nothing exported
        assert text.count("Install the tool set (once per constraints.txt), or reuse it") >= len(jobs), stage
        assert "all valid; " in text, stage  # `mlops validate` really ran
        gate = re.search(r"policy tests: \d+, 0 failed; coverage [\d.]+% \(at least 90", text)
        assert gate, stage  # the gate ran the policies' tests
        assert "tests/test_repository.py" in text, stage  # the test job's pytest ran
        assert "tests/test_life.py" in text, stage  # the slow scratch-copy life too
        assert re.search(r"\d+ passed", text), stage  # (a failure fails the job)


def retrain(params: Path, seed: int) -> None:
    """A new version of the first model: its training seed changed (the same model quality, so its
    report passes; a new fingerprint, so a new version)."""
    text = params.read_text()
    changed = re.sub(r"(max_leaf_nodes: 31\n\s+seed: )\d+", rf"\g<1>{seed}", text, count=1)
    assert changed != text
    params.write_text(changed)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def readme_walk(readme: str) -> str:
    """The shell blocks of the README's first walk, in order, as one script."""
    walk = readme.split("<!-- walk:begin -->", 1)[1].split("<!-- walk:end -->", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", walk, re.S)
    assert len(blocks) >= 10, "the README's walk lost its steps"
    return "\n".join(textwrap.dedent(block) for block in blocks)


@pytest.fixture
def life(tmp_path: Path) -> Any:
    project = baked(ROOT, tmp_path / "out", ANSWERS)
    # The repository's own `.venv` is this test's environment (same constraints, so `make install`
    # finds its stamp), and act's jobs find it in the tool cache under its key; the make targets'
    # and act's `mlops` fork from the tests' fork server (environment()), while the README's walk,
    # which sources bin/activate, runs the real console script.
    environment(project / ".venv")
    tools = shared_tools(project)
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "gh").write_text(FAKE_GH)
    (fake_bin / "gh").chmod(0o755)
    life = Life(project, tools, fake_bin)
    life.answer_reviews("0" * 40, [])  # until a pull request is opened
    yield life
    life.stop_checks()
    life.cli("down", ok=(0, 1, 2))


def test_a_generated_repository_stays_green_through_a_models_whole_life(life: Life, tmp_path: Path) -> None:
    project = life.project
    assert (
        yaml.safe_load((project / f"models/{MODEL}/model.yaml").read_text())["description"]
        == ANSWERS["model_purpose"]
    )
    assert (
        subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True).stdout
        == ""
    )
    life.check("generated")  # its whole `make test` runs once, in the last state, under act (below)

    # The README's walk, as written: train, register, promote, the gate, merge, reconcile, a
    # prediction, traffic, drift, feedback, the evidence pack; then the servers stop.
    walk = readme_walk((project / "README.md").read_text())
    assert f"mlops promote {MODEL} --to staging" in walk and "churn" not in walk
    done = life.sh(walk)
    assert re.search(r'"version":\s*1.*"request_id"', done.stdout), "the curl prediction answered"
    assert f"{MODEL}-staging.zip: intact" in done.stdout
    assert "decision recorded: " in done.stderr + done.stdout
    life.check("after the README's walk: v1 in staging")

    # Production, after the soak, with two approvals (GitHub's reviews, through the stand-in).
    life.sh("make reconcile ENV=staging")
    path = project / f"models/{MODEL}/model.yaml"
    text = path.read_text()
    for key, value in WORDS.items():
        text = re.sub(rf"^(\s*){key}: 'TODO[^\n]*$", rf"\g<1>{key}: '{value}'", text, count=1, flags=re.M)
    path.write_text(text)
    life.commit(f"Describe {MODEL}")
    promoted = life.mlops("promote", MODEL, "--to", "production", "--from", "staging", "--no-pr")
    event = tmp_path / "review.json"
    event.write_text(
        json.dumps(
            {
                "pull_request": {"number": 7, "user": {"login": "data-scientist"}},
                "repository": {"full_name": "insure-co/claims-desk"},
            }
        )
    )
    later = (datetime.now(UTC) + timedelta(hours=25)).isoformat(timespec="seconds").replace("+00:00", "Z")
    head = life.sh(f"git rev-parse {promoted['branch']}").stdout.strip()
    life.answer_reviews(head, [{**review, "commit_id": head} for review in REVIEWS])
    gate = life.sh("make policy RECORD=1", GITHUB_EVENT_PATH=str(event), MLOPS_NOW=later)
    assert re.search(r"### Policy gate: (✅ \*\*allowed\*\*|⚠️ \*\*allowed with warnings\*\*)", gate.stdout), (
        gate.stdout
    )
    life.merge(promoted["branch"], "Approved-by: @insure-co/model-risk")
    life.sh("make reconcile ENV=production")
    pack = life.mlops("evidence", MODEL, "--env", "production", "-o", str(tmp_path / "production.zip"))
    assert pack["findings"] == [] and pack["version"] == 1
    with zipfile.ZipFile(tmp_path / "production.zip") as archive:
        counted = json.loads(archive.read("approvals.json"))["counted"]
    assert (counted["source"], counted["approvers"]) == ("github-api", ["claims-lead", "risk-officer"])
    assert counted["excluded"] == [
        {"user": "data-scientist", "why": "opened the pull request (no self-approval)"}
    ]
    life.check("v1 in production")

    # A second model, like the first, trained and registered.
    life.mlops("model", "add", SECOND, "--like", MODEL, "--purpose", "Flag claims for the fraud unit")
    life.commit(f"Add {SECOND}")
    life.sh("make train")
    life.commit("Train", "pipelines/dvc.lock")
    registered = {v["model"]: v for v in life.mlops("register", "--report")["versions"]}
    assert registered[SECOND]["result"] == "registered" and registered[MODEL]["result"] == "unchanged"
    life.check("a second model")  # its whole suite runs below (pr.yml under act), in a state holding it too

    # A new version of the first model, then a canary in staging and a shadow in production.
    params = project / "pipelines/params.yaml"
    retrain(params, 8)
    life.sh("make train")
    life.commit("Retrain with another seed", "pipelines/params.yaml", "pipelines/dvc.lock")
    assert {v["model"]: v["version"] for v in life.mlops("register", "--report")["versions"]}[MODEL] == 2
    life.sh("git switch --quiet -c canary")
    life.edit_manifest(
        "staging", MODEL, version=2, traffic=[{"version": 1, "percent": 80}, {"version": 2, "percent": 20}]
    )
    life.edit_manifest("production", MODEL, shadow={"version": 2})
    life.commit("Canary v2 in staging, shadow v2 in production")
    life.sh("make policy", MLOPS_NOW=later)
    life.merge("canary")
    life.sh("make reconcile")
    sent = life.mlops("predict", MODEL, "--env", "staging", "--input", f"pipelines/data/{MODEL}/test.csv")
    assert set(sent["versions"]) == {"1", "2"} and sent["failed"] == {}
    life.check("a canary and a shadow")

    # An exception in a manifest: reviewed in the pull request, ending by itself.
    expires = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    life.edit_manifest(
        "production",
        MODEL,
        exceptions=[
            {
                "rule": "drift",
                "reason": "seasonal claims surge",
                "approved_by": "@insure-co/model-risk",
                "expires": expires,
            }
        ],
    )
    life.commit("Drift exception for the claims surge")
    life.check("a manifest exception")

    # Roll staging back (the revert of its last promotion, as a branch), merged and applied.
    rolled = life.mlops("rollback", MODEL, "--env", "staging", "--no-pr")
    life.merge(rolled["branch"])
    life.sh("make reconcile ENV=staging")
    assert life.mlops("status", MODEL, "--env", "staging")["deployments"][0]["serving"] == "v1"
    life.check("after a rollback")

    # A new version, registered with its report and promoted by `make register PROMOTE_TO=staging`.
    retrain(params, 9)
    life.sh("make train")
    life.commit("Retrain", "pipelines/params.yaml", "pipelines/dvc.lock")
    out = life.sh(f"make register MODELS={MODEL} PROMOTE_TO=staging")
    branch = re.search(rf"branch (promote/{MODEL}-staging-v3)", out.stdout + out.stderr)
    assert branch, out.stdout + out.stderr
    assert life.sh("git branch --show-current").stdout.strip() == "main"  # it left the working tree alone
    life.merge(branch.group(1))
    life.sh("make reconcile ENV=staging")
    life.checks_passed()  # every earlier state's checks, run beside the life
    life.check("a new version promoted", act=True)
    assert len(life.checked) == 8
