"""`make demo`: this repository's model through its whole life, in a scratch copy.

The copy holds this repository's files (the template's own ones left out, so the template's
checkout demonstrates exactly what it generates), pristine: nothing promoted yet. Every step
then runs inside it through its own `mlops` command and Makefile, so the demo exercises what
a team has. The copy is left in a temporary directory (or DEMO_DIR) for inspection.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .core import state
from .core import tags as names
from .core.config import load_repo
from .core.protocols import input_example
from .deploy.targets.local import http_json
from .registry import attestation
from .registry.client import Registry, stored_sha256

console = Console(width=None if sys.stdout.isatty() else 120)

SECOND_MODEL = "credit-limit"
MLOPS = [sys.executable, "-m", "mlops_gitops.cli"]


@dataclass
class Step:
    title: str
    seconds: float
    detail: str


class Demo:
    def __init__(self, source: Path, workdir: Path):
        self.source = source
        self.workdir = workdir
        self.project: Path | None = None
        self.steps: list[Step] = []
        self.evidence: Path | None = None
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # the demo commits (promotions) even on a machine with no git identity configured
        for role in ("AUTHOR", "COMMITTER"):
            self.env.setdefault(f"GIT_{role}_NAME", "mlops demo")
            self.env.setdefault(f"GIT_{role}_EMAIL", "demo@localhost")
        # The generated project reuses this environment instead of installing its own.
        self.env["VENV"] = str(Path(sys.prefix))

    def run(
        self, title: str, cmd: list[str], cwd: Path | None = None, show: bool = False, result: str = r"(.+)"
    ) -> str:
        """Run one step; `result` is a regex whose first group, found in the output, summarises it."""
        started = time.monotonic()
        with console.status(f"[bold]{title}[/] …"):
            proc = subprocess.run(cmd, cwd=cwd or self.project, env=self.env, capture_output=True, text=True)
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            console.print(f"[red]✗ {title}[/] ({' '.join(cmd)} exited {proc.returncode})")
            console.print(proc.stdout[-4000:], proc.stderr[-4000:], markup=False, highlight=False)
            raise SystemExit(1)
        found = re.findall(result, proc.stdout + proc.stderr)
        self.steps.append(Step(title, seconds, found[-1].strip() if found else "ok"))
        console.print(f"[green]✓[/] {title} [dim]({seconds:.1f}s)[/]")
        if show:
            console.print(proc.stdout.rstrip(), markup=False, highlight=False)
        return proc.stdout

    def scratch_copy(self) -> None:
        """This repository's files, as git has them (uncommitted ones included, the template's
        own ones left out), in a new git repository under the work directory: the demo changes
        nothing here. Manifests start pristine (nothing promoted), whatever this one runs."""
        import json
        import shutil

        import yaml

        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=self.source,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")
        template = self.source / "cookiecutter.json"
        only = json.loads(template.read_text())["_template_only"] if template.is_file() else []
        project = self.workdir / self.source.name
        for rel in filter(None, listed):
            if any(rel == o or (o.endswith("/") and rel.startswith(o)) for o in only):
                continue
            if (self.source / rel).is_file():
                (project / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.source / rel, project / rel)
        for manifest in sorted(project.glob("environments/*/*.yaml")):
            text = manifest.read_text()
            if yaml.safe_load(text).get("version") is not None or "traffic:" in text:
                data = {k: v for k, v in yaml.safe_load(text).items() if k not in ("traffic", "shadow")}
                manifest.write_text(yaml.safe_dump({**data, "version": None}, sort_keys=False))
        self.project = project
        self.run("a scratch copy of this repository", ["git", "init", "--quiet", "-b", "main"], cwd=project)
        self.run("its first commit", ["git", "add", "--all"], result=r"(?!)")
        self.run("commit", ["git", "commit", "--quiet", "-m", "Scratch copy for the demo"], result=r"(?!)")

    def describe(self, model: str) -> None:
        """The model's words, written as its team would: production is denied while they are TODOs."""
        assert self.project is not None
        path = self.project / "models" / model / "model.yaml"
        words = {
            "description": f"Demo: scores for {model}, written by the demo",
            "intended_use": "Ranking cases for a human reviewer in the demo; never an automatic decision",
            "out_of_scope": "Decisions about credit, pricing or eligibility",
            "limitations": "Trained on the synthetic example table of pipelines/stages",
            "ethical_considerations": "Fairness gaps by age are measured at every evaluation",
        }
        text = path.read_text()
        for key, value in words.items():
            text = re.sub(rf"^(\s*){key}: 'TODO[^\n]*$", rf"\g<1>{key}: '{value}'", text, count=1, flags=re.M)
        path.write_text(text)
        self.run(
            f"write {model}'s words (its card): no TODO left for production",
            ["git", "commit", "--quiet", "-am", f"Describe {model}"],
            result=r"(?!)",
        )

    def lifecycle(self) -> None:
        assert self.project is not None
        self.run("validate mlops.yaml, models and manifests", [*MLOPS, "validate"], result=r"(all valid.*)")
        first = sorted(p.name for p in (self.project / "models").iterdir() if p.is_dir())[0]
        self.describe(first)
        self.run(
            f"add a second model ({SECOND_MODEL})",
            [*MLOPS, "model", "add", SECOND_MODEL],
            show=True,
            result=r"(models/[\w-]+/model\.yaml)",
        )
        self.run("list the models", [*MLOPS, "model", "list"], show=True, result=r"(?!)")
        self.run(
            "make the team's signing key (its public half is committed)",
            [*MLOPS, "keys", "init"],
            show=True,
            result=r"(keys/team\.pub)",
        )
        self.run("commit the new model and the key", ["git", "add", "--all"], result=r"(?!)")
        self.run("commit", ["git", "commit", "--quiet", "-m", f"Add {SECOND_MODEL}"], result=r"(?!)")
        self.run(
            "lint, types and fast tests of this repository",
            ["make", "lint", "typecheck", "unit", "PYTEST_ARGS=-m 'not slow and not act'"],
            result=r"=+ (\d+ passed[^=]*) =+",
        )
        self.run(
            "train: dvc repro (ingest, prepare, train, evaluate)",
            ["make", "train"],
            result=r"(Use `dvc push`.*|Data and pipelines are up to date\.)",
        )
        self.run(
            "train again: nothing changed, so nothing runs",
            ["make", "train"],
            result=r"(Data and pipelines are up to date\.)",
        )
        self.run(
            "commit what dvc asks to commit (dvc.lock): the lineage names this commit",
            ["git", "add", "pipelines/dvc.lock"],
            result=r"(?!)",
        )
        self.run("commit", ["git", "commit", "--quiet", "-m", "Train"], result=r"(?!)")
        self.run(
            "register in MLflow with lineage; report against production",
            [*MLOPS, "register", "--report"],
            show=True,
            result=r"\b(registered|unchanged)\b",
        )
        self.run(
            "register the same run again: no new version",
            [*MLOPS, "register"],
            result=r"\b(registered|unchanged)\b",
        )
        # the first model the pipeline trains
        report = sorted((self.project / "reports").glob("*/v*/report.md"))[0]
        console.print(report.read_text(), markup=False, highlight=False)
        self.steps.append(
            Step("champion/challenger report (markdown + ROC, PR, confusion PNGs)", 0.0, str(report.parent))
        )
        self.gate(report.parent.parent.name)
        self.deploy(report.parent.parent.name)

    def gate(self, model: str) -> None:
        """Promotion through the policy gate: staging allowed, production too early denied."""
        assert self.project is not None
        self.run(
            "policy tests (Rego on the embedded OPA)",
            [*MLOPS, "policy", "test"],
            result=r"(\d+ tests, \d+ passed, \d+ failed)",
        )
        self.run(
            f"promote {model} v1 to staging (branch + commit)",
            [*MLOPS, "promote", model, "--to", "staging", "--version", "1", "--reason", "demo", "--no-pr"],
            show=True,
            result=r"(promote/\S+)",
        )
        allowed = self.gate_check("staging")
        if allowed.returncode != 0:
            console.print(allowed.stdout, allowed.stderr, markup=False, highlight=False)
            raise SystemExit("the staging promotion was denied")
        self.steps.append(
            Step("gate: the staging promotion (allowed)", 0.0, allowed.stderr.strip().splitlines()[-1])
        )
        self.run(
            "merge the staging promotion into main", ["git", "switch", "--quiet", "main"], result=r"(?!)"
        )
        self.run(
            "fast-forward main",
            ["git", "merge", "--quiet", "--ff-only", f"promote/{model}-staging-v1"],
            result=r"(?!)",
        )
        self.run(
            f"promote {model} to production from staging",
            [*MLOPS, "promote", model, "--to", "production", "--from", "staging", "--no-pr"],
            result=r"(promote/\S+)",
        )
        denied = self.gate_check("production")
        if denied.returncode != 1:
            console.print(denied.stdout, denied.stderr, markup=False, highlight=False)
            raise SystemExit("the production promotion was not denied")
        console.print("[green]✓[/] gate: production too early is [bold]denied[/], with its reasons:")
        console.print(denied.stdout.rstrip(), markup=False, highlight=False)
        self.steps.append(
            Step("gate: production too early (denied)", 0.0, denied.stderr.strip().splitlines()[-1])
        )

    def gate_check(self, env: str) -> subprocess.CompletedProcess[str]:
        """mlops facts for the branch, then mlops check over them in the promotion namespace."""
        assert self.project is not None
        out = state.workspace(self.project) / f"facts-{env}"
        self.run(
            f"facts for the {env} promotion",
            [*MLOPS, "facts", "--base", "main", "--out", str(out)],
            result=r"(?!)",
        )
        files = [str(p.relative_to(self.project)) for p in sorted(out.glob("*.json"))]
        return subprocess.run(
            [*MLOPS, "check", *files, "--namespace", "promotion", "--record"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
        )

    def deploy(self, model: str) -> None:
        """Reconcile staging, predict over HTTP, then a broken version and its automatic rollback."""
        import json

        assert self.project is not None
        self.run("back to main (staging runs v1 there)", ["git", "switch", "--quiet", "main"], result=r"(?!)")
        self.run(
            "plan staging (exit 1: out of sync)",
            ["make", "-s", "plan", "ENV=staging"],
            show=True,
            result=r"(create|update)",
        )
        self.run(
            "reconcile staging: verify sha256, start the server, smoke test, alias @staging",
            [*MLOPS, "reconcile", "--env", "staging"],
            show=True,
            result=r"(healthy)",
        )
        self.run("status", [*MLOPS, "status"], show=True, result=r"(http://\S+)")
        status = json.loads(self.run("status as JSON", [*MLOPS, "status", "-o", "json"], result=r"(?!)"))
        url = next(
            d["url"] for d in status["deployments"] if (d["environment"], d["model"]) == ("staging", model)
        )
        records = input_example(state.artifacts_dir(self.project) / model / "v1" / "model")

        def post(body: object) -> tuple[int, dict[str, Any]]:
            status, answer = http_json("POST", f"{url}/predict", body, timeout=10)
            return status, answer if isinstance(answer, dict) else {}

        status, answer = post({"dataframe_records": records})
        console.print(
            f"[green]✓[/] POST {url}/predict → {status}: v{answer.get('version')} {answer.get('predictions')}"
        )
        bad = {**records[0]}
        bad.pop(next(iter(bad)))
        status, refused = post({"dataframe_records": [bad]})
        console.print(f"[green]✓[/] a request missing a field → {status}: {refused.get('error')}")
        self.steps.append(Step("predictions over HTTP (and a bad request refused)", 0.0, f"{url}/predict"))
        self.broken(model, records, post)
        self.run(
            "status after the rollback", [*MLOPS, "status", "--env", "staging"], show=True, result=r"(v\d+)"
        )
        self.monitor(model, post)
        self.production(model)
        self.canary(model, post)
        self.run("stop the model servers", [*MLOPS, "down"], result=r"(stopped: .*)")

    def broken(self, model: str, records: list[dict[str, Any]], post: Any) -> None:
        """A version whose predict raises, merged: the reconcile rolls it back by itself while a
        client keeps polling."""
        import threading

        assert self.project is not None
        self.run(
            f"register {model} v2, a version whose predict raises",
            [sys.executable, "-m", "mlops_gitops.demo", "register-broken", model],
            result=r"(v\d+)",
        )
        manifest = self.project / "environments" / "staging" / f"{model}.yaml"
        manifest.write_text(
            re.sub(r"^version: .*$", "version: 2", manifest.read_text(), count=1, flags=re.MULTILINE)
        )
        self.run(
            "merge its promotion to staging (the gate is skipped here on purpose)",
            ["git", "commit", "--quiet", "-am", f"Promote {model} v2 to staging (broken, for the demo)"],
            result=r"(?!)",
        )
        failures: list[object] = []
        answered: list[object] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                code, body = post({"dataframe_records": records[:1]})
                (answered if code == 200 else failures).append(body.get("version") if code == 200 else code)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        started = time.monotonic()
        proc = subprocess.run(
            [*MLOPS, "reconcile", "--env", "staging"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - started
        stop.set()
        poller.join()
        if proc.returncode != 1:
            console.print(proc.stdout, proc.stderr, markup=False, highlight=False)
            raise SystemExit("the broken version was not rolled back")
        console.print(
            "[green]✓[/] reconcile staging with the broken v2 → [bold]rolled back[/] by itself (exit 1):"
        )
        console.print(proc.stderr.strip(), markup=False, highlight=False)
        console.print(
            f"  a client polling throughout: {len(answered)} answers, {len(failures)} failures, "
            f"versions seen {sorted(set(map(str, answered)))}"
        )
        self.steps.append(
            Step(
                "broken v2: automatic rollback, v1 kept serving",
                seconds,
                f"{len(answered)} requests, {len(failures)} failed",
            )
        )

    def production(self, model: str) -> None:
        """Production once staging's soak has passed (the policies' clock is injected), the
        merge, the deployment, and production's evidence pack.

        Outside GitHub no review can be had, so the gate's last word stays a denial for want
        of approvals; the merge names the approvers in trailers, as an administrator's merge
        would, and the evidence pack lists them as claims (never counted: whoever pushes
        writes them) and reports the deployment as made over a denied decision.
        """
        from datetime import UTC, datetime, timedelta

        assert self.project is not None
        repo = load_repo(self.project)
        branch = f"promote/{model}-production-v1"
        soak = next(e for e in repo.project["environments"] if e["name"] == "production").get("soak_hours", 0)
        later = (datetime.now(UTC) + timedelta(hours=soak + 1)).replace(microsecond=0)
        self.run("back to the production promotion", ["git", "switch", "--quiet", branch], result=r"(?!)")
        self.run(
            "bring the branch up to date with main (GitHub's 'Update branch')",
            ["git", "merge", "--quiet", "--no-edit", "main"],
            result=r"(?!)",
        )
        self.env["MLOPS_NOW"] = later.isoformat().replace("+00:00", "Z")
        try:
            decided = self.gate_check("production")
        finally:
            self.env.pop("MLOPS_NOW")
        console.print(
            f"[green]✓[/] gate at {later:%Y-%m-%d %H:%M}Z, after the {soak}h soak "
            f"(exit {decided.returncode}):"
        )
        console.print(decided.stdout.rstrip() or decided.stderr.strip(), markup=False, highlight=False)
        self.steps.append(
            Step(
                "gate: production after the soak (decision kept in the registry)",
                0.0,
                decided.stderr.strip().splitlines()[-1],
            )
        )
        approvers = list(repo.project["owners"]["production_approvers"])
        self.run("back to main", ["git", "switch", "--quiet", "main"], result=r"(?!)")
        self.run(
            f"merge the production promotion (trailers naming {', '.join(approvers)}: claims, not approvals)",
            [
                "git",
                "merge",
                "--quiet",
                "--no-ff",
                "-m",
                f"Merge {branch}",
                "-m",
                "\n".join(f"Approved-by: {a}" for a in approvers),
                branch,
            ],
            result=r"(?!)",
        )
        self.run(
            "reconcile production",
            [*MLOPS, "reconcile", "--env", "production"],
            show=True,
            result=r"(healthy)",
        )
        self.evidence_pack(model)

    def evidence_pack(self, model: str) -> None:
        """Production's evidence pack, written and verified."""
        assert self.project is not None
        out = state.evidence_dir(self.project, "production") / f"{model}.zip"
        started = time.monotonic()
        proc = subprocess.run(
            [*MLOPS, "evidence", model, "--env", "production", "-o", str(out)],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            console.print(proc.stdout, proc.stderr, markup=False, highlight=False)
            raise SystemExit("the evidence pack could not be written")
        console.print(proc.stdout.rstrip(), markup=False, highlight=False)
        console.print(proc.stderr.rstrip(), markup=False, highlight=False)
        self.run(
            "verify the evidence pack",
            [*MLOPS, "evidence", "verify", str(out)],
            show=True,
            result=r"(intact.*)",
        )
        self.steps.append(
            Step("production's evidence pack (summary.html inside)", time.monotonic() - started, str(out))
        )
        self.evidence = out

    def monitor(self, model: str, post: Any) -> None:
        """Shifted traffic to the served model; drift found against v1's training data; the alert."""
        assert self.project is not None
        sys.path.insert(0, str(self.project / "pipelines" / "stages"))
        from datetime import UTC, datetime

        from churn_data import TARGET, make_customers

        # the window starts now: the polling above sent one row hundreds of times, itself a drift
        since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        shifted = make_customers(300, 99, shift=0.9).drop(columns=[TARGET, "customer_id"])
        rows = shifted.to_dict(orient="records")
        for start in range(0, len(rows), 10):
            post({"dataframe_records": rows[start : start + 10]})
        console.print(f"[green]✓[/] sent {len(rows)} customers from a shifted population to staging")
        started = time.monotonic()
        summary = state.workspace(self.project) / "drift-summary.md"
        proc = subprocess.run(
            [*MLOPS, "drift", "--env", "staging", "--since", since, "--summary-file", str(summary)],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 1:
            console.print(proc.stdout[-3000:], proc.stderr[-3000:], markup=False, highlight=False)
            raise SystemExit("expected drift (exit 1) on shifted traffic")
        console.print(proc.stdout.rstrip(), markup=False, highlight=False)
        report = re.search(r"report (\S+\.html)", proc.stdout)
        self.steps.append(
            Step(
                "drift on shifted traffic (exit 1), recorded for the gate",
                time.monotonic() - started,
                f"report {report.group(1) if report else '?'}",
            )
        )
        self.run(
            "the retrain trigger: the drift issue and a dispatch of train.yml",
            [
                *MLOPS,
                "alert",
                "--name",
                "drift-staging",
                "--title",
                "Drift in staging",
                "--body-file",
                str(summary),
                "--repository",
                f"acme/{self.project.name}",
                "--dispatch",
                "train.yml",
                "--input",
                f"models={model}",
            ],
            show=True,
            result=r"(dispatch train\.yml[^;]*)",
        )

    def canary(self, model: str, post: Any) -> None:
        """An analysed canary in staging: a retrained version's weight moved 25% -> 50% -> 100% by
        the reconciler on its verdicts alone; then `mlops history` and `mlops compare` on it."""
        import json

        import yaml
        from churn_data import TARGET, make_customers

        assert self.project is not None
        found = self.run(
            f"register {model} v3: a retrain that changed nothing (v1's model again)",
            [sys.executable, "-m", "mlops_gitops.demo", "register-copy", model],
            result=r"registered \S+ (v\d+)",
        )
        number = re.search(r"registered \S+ v(\d+)", found)
        assert number is not None, found
        version = int(number.group(1))
        rollout = {
            "steps": [25, 50],
            "interval": 2,
            "threshold": 2,
            "checks": {"min_requests": 40, "max_error_rate": 0.01, "max_latency_p99_ms": 250,
                       "max_class_shift": 0.15, "max_score_psi": 0.2},
        }  # fmt: skip
        manifest = self.project / "environments" / "staging" / f"{model}.yaml"
        text = re.sub(r"^version: .*$", f"version: {version}", manifest.read_text(), count=1, flags=re.M)
        manifest.write_text(
            text + yaml.safe_dump({"rollout": rollout}, default_flow_style=None, sort_keys=False)
        )
        self.run(
            f"promote v{version} to staging under an analysed canary (rollout: steps 25, 50)",
            ["git", "commit", "--quiet", "-am", f"Promote {model} v{version} to staging (analysed canary)"],
            result=r"(?!)",
        )
        rows = make_customers(400, 5).drop(columns=[TARGET, "customer_id"]).to_dict(orient="records")
        started, rounds = time.monotonic(), []
        interval = float(rollout["interval"])  # type: ignore[arg-type]
        for _ in range(8):
            proc = subprocess.run(
                [*MLOPS, "reconcile", "--env", "staging", "-o", "json"],
                cwd=self.project, env=self.env, capture_output=True, text=True,
            )  # fmt: skip
            outcome = json.loads(proc.stdout)["results"][0] if proc.stdout.strip() else {}
            rounds.append(outcome)
            console.print(f"  reconcile: {outcome.get('result')}: {outcome.get('message')}", markup=False)
            if outcome.get("result") != "progressing":
                break
            # 400 requests a round: at 25% about 100 reach the canary, enough that the same model's
            # class shares differ by chance far less than max_class_shift (a flaky demo otherwise)
            for row in rows:
                post({"dataframe_records": [row]})
            time.sleep(interval)
        if rounds[-1].get("result") != "healthy":
            raise SystemExit(f"the analysed canary did not end promoted: {rounds[-1]}")
        self.steps.append(
            Step(
                f"analysed canary: v{version} promoted 25% -> 50% -> 100% on its verdicts",
                time.monotonic() - started,
                rounds[-1].get("message", ""),
            )
        )
        self.run(
            "what served staging, since when and why",
            [*MLOPS, "history", model, "--env", "staging"],
            show=True,
            result=r"(v\d+)",
        )
        compared = subprocess.run(
            [*MLOPS, "compare", model, "--env", "staging"], cwd=self.project, env=self.env,
            capture_output=True, text=True,
        )  # fmt: skip
        console.print(compared.stdout.rstrip(), compared.stderr.rstrip(), markup=False, highlight=False)
        if compared.returncode not in (0, 1, 3):
            raise SystemExit(f"mlops compare could not run: {compared.stderr.strip()}")
        self.steps.append(
            Step("A/B of the versions side by side (mlops compare)", 0.0, compared.stderr.strip())
        )

    def summary(self) -> None:
        table = Table(title="what the demo did", title_justify="left")
        for column in ("step", "seconds", "result"):
            table.add_column(column)
        for step in self.steps:
            table.add_row(step.title, f"{step.seconds:.1f}", step.detail[:80])
        console.print(table)
        console.print(f"project: [bold]{self.project}[/]")
        if self.evidence is not None:
            console.print(f"production's evidence pack: [bold]{self.evidence}[/]")


def register_broken(registry: Registry, model: str, good_calls: int = 0) -> int:
    """The demo's bad release: a version of `model` whose predict raises; returns its number.
    The reconciler must roll it back by itself. With good_calls=N its first N predict calls answer
    (zeros) and later ones raise: it passes the server's load-time smoke test, gets switched in,
    and fails the health check afterwards (the path where the old version is switched back)."""
    body = f"""
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls <= {int(good_calls)}:
            return np.zeros((len(model_input), 2))
        raise RuntimeError("broken on purpose: a bug that only shows at prediction time")
    """
    return register_code(registry, model, body, "broken")


def register_code(registry: Registry, model: str, predict_body: str, name: str = "code") -> int:
    """A version of `model` from code (MLflow's models-from-code, with v1's signature and no input
    example, so health checks smoke-test it on another version's) whose predict runs
    `predict_body` with `model_input` (a DataFrame), `np` and `time` in scope; registered with its
    sha256. Returns its number."""
    import tempfile as tmp
    import textwrap

    import mlflow

    signature = mlflow.models.get_model_info(registry.version(model, 1).source).signature
    with tmp.TemporaryDirectory() as folder:
        code = Path(folder) / f"{name}.py"
        code.write_text(
            "import time\n\nimport mlflow.pyfunc\nimport numpy as np\n"
            "from mlflow.models import set_model\n\n\n"
            "class Code(mlflow.pyfunc.PythonModel):\n"
            "    def predict(self, context, model_input, params=None):\n"
            + textwrap.indent(textwrap.dedent(predict_body).strip(), " " * 8)
            + "\n\n\nset_model(Code())\n"
        )
        mlflow.set_experiment(experiment_id=registry.experiment_id())
        with mlflow.start_run(run_name=f"{model}-{name}"):
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(code), signature=signature, pip_requirements=["mlflow"]
            )
    version = registry.client.create_model_version(
        model, info.model_uri, tags=names.artifact_tags(stored_sha256(info.model_uri)), model_id=info.model_id
    )
    attestation.sign_version(registry, model, int(version.version))  # as `mlops register` does
    return int(version.version)


def register_copy(registry: Registry, model: str) -> int:
    """A new version of `model` from v1's logged model and tags: what a retrain that changed
    nothing registers. Returns its number."""
    first = registry.version(model, 1)
    version = registry.client.create_model_version(
        model,
        first.source,
        run_id=first.run_id,
        tags=dict(first.tags),
        model_id=getattr(first, "model_id", None),
    )
    return int(version.version)


def main() -> None:
    if sys.argv[1:2] == ["register-copy"]:
        number = register_copy(Registry(load_repo(Path.cwd())), sys.argv[2])
        print(f"registered {sys.argv[2]} v{number} (v1's model again)")
        return
    if sys.argv[1:2] == ["register-broken"]:
        number = register_broken(Registry(load_repo(Path.cwd())), sys.argv[2])
        print(f"registered {sys.argv[2]} v{number} (broken on purpose)")
        return
    source = Path(__file__).resolve().parents[2]
    workdir = Path(os.environ.get("DEMO_DIR") or tempfile.mkdtemp(prefix="mlops-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    demo = Demo(source, workdir)
    # The generated project's engine, not this checkout's, runs inside it.
    demo.scratch_copy()
    assert demo.project is not None
    demo.env["PYTHONPATH"] = str(demo.project / "scripts")
    try:
        demo.lifecycle()
    except BaseException:  # a failed or interrupted demo leaves no model server running
        subprocess.run([*MLOPS, "down"], cwd=demo.project, env=demo.env, capture_output=True, timeout=120)
        raise
    demo.summary()


if __name__ == "__main__":
    main()
