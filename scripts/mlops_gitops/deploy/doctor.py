"""`mlops doctor`: what a repository's surroundings lack, each with its fix. A team's life spans
machines that share git, GitHub's settings, the registry, the DVC remote and the model store;
`make test` cannot see any of them. Each check reads one of them:

    github      the variables and secrets the workflows read; the environments and their
                reviewers; the default branch's protection (pr.yml's checks required, stale
                approvals dismissed, code owners' review required) and CODEOWNERS; a runner
                online for each self-hosted label set in mlops.yaml
    registry    reachable with this machine's credentials, every model readable; as the
                registry's admin, each role's permissions against registry.roles.ROLES
    storage     the DVC remote (a team's, reachable) and, for the kserve target, the model store

GitHub is asked through `core.github`'s interface (`gh` here; tests stand in for it there).
A check that cannot run (no GitHub token, say) is a finding like any other.
"""

from __future__ import annotations

import re
import subprocess
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core import state
from ..core.config import Repo, outside
from ..core.errors import MlopsError
from ..core.github import GitHub
from ..core.gitinfo import default_branch, git
from ..registry.roles import ROLES

OK, MISSING, WARN = "ok", "missing", "warn"
READS = re.compile(r"\$\{\{[^}]*?\b(vars|secrets)\.([A-Z][A-Z0-9_]*)")
# What the workflows read but a team may go without (what each is for).
OPTIONAL = {
    "MLOPS_GATE_TOKEN": "reviewers counted by team membership (else listed, not counted)",
    "KUBECONFIG": "kubectl for the kserve target (not needed for Argo CD / Flux, nor the local target)",
    "MLOPS_COLLECT_TOKEN": "the collector's token in KServe's logger URL (kserve target)",
    state.STATE_DIR_ENV: "records and servers outside the runner's work tree (deploy runner)",
    "AWS_ENDPOINT_URL": "an S3-compatible store other than AWS (MinIO)",
    "ARGOCD_SERVER": "health from Argo CD (kserve target, directory mode)",
    "ARGOCD_AUTH_TOKEN": "health from Argo CD (kserve target, directory mode)",
}
PR_CHECKS = ("lint", "validate", "policy", "test")


@dataclass(frozen=True)
class Finding:
    area: str
    check: str
    status: str  # ok | missing | warn
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def judged(area: str, check: str, ok: bool, said: tuple[str, str], fix: str) -> Finding:
    """A yes-or-no check: ok with said[0], or missing with said[1] and its fix."""
    return Finding(area, check, OK if ok else MISSING, said[0] if ok else said[1], "" if ok else fix)


def repository_of(root: Path, given: str | None) -> str:
    """OWNER/NAME: given, else the origin remote's (github.com URLs, https or ssh)."""
    if given:
        return given
    url = git(root, "remote", "get-url", "origin", check=False)
    found = re.search(r"github\.com[:/]([^/]+/[^/]+?)(\.git)?/?$", url or "")
    if not found:
        raise MlopsError(
            f"origin: {url or 'no remote'} is not a GitHub repository (expected --repository OWNER/NAME)"
        )
    return found.group(1)


def workflow_reads(root: Path) -> dict[str, set[str]]:
    """{'vars': names, 'secrets': names} the workflows read (GITHUB_TOKEN is GitHub's own)."""
    found: dict[str, set[str]] = {"vars": set(), "secrets": set()}
    for path in sorted((root / ".github" / "workflows").glob("*.y*ml")):
        for kind, name in READS.findall(path.read_text(encoding="utf-8")):
            if name != "GITHUB_TOKEN":
                found[kind].add(name)
    return found


def _names(github: GitHub, path: str, key: str) -> set[str]:
    answer = github.get(path)
    pages = answer if isinstance(answer, list) else [answer]
    return {item["name"] for page in pages for item in (page or {}).get(key, [])}


def check_settings(repo: Repo, github: GitHub, repository: str) -> list[Finding]:
    """The variables and secrets, environments and reviewers, branch protection and CODEOWNERS."""
    found: list[Finding] = []
    reads = workflow_reads(repo.root)
    have = {
        "vars": _names(github, f"repos/{repository}/actions/variables", "variables"),
        "secrets": _names(github, f"repos/{repository}/actions/secrets", "secrets"),
    }
    optional = dict(OPTIONAL)
    if (repo.project.get("signing") or {}).get("identities"):
        optional["MLOPS_SIGNING_KEY"] = "train.yml signs keyless on GitHub (signing.identities); act needs it"
    for kind, names in reads.items():
        word, verb = ("variable", "variable") if kind == "vars" else ("secret", "secret")
        for name in sorted(names):
            if name in have[kind]:
                found.append(Finding("github", f"{word} {name}", OK, "set"))
            elif name in optional:
                found.append(
                    Finding("github", f"{word} {name}", WARN, f"not set: optional, {optional[name]}")
                )
            else:
                found.append(
                    Finding(
                        "github",
                        f"{word} {name}",
                        MISSING,
                        "read by the workflows, not set",
                        f"gh {verb} set {name} --repo {repository}",
                    )
                )
    for env in repo.project["environments"]:
        found.append(_environment(github, repository, env))
    found += _protection(repo, github, repository)
    return found


def _environment(github: GitHub, repository: str, env: dict[str, Any]) -> Finding:
    name = env["name"]
    try:
        answer = github.get(f"repos/{repository}/environments/{name}")
    except MlopsError:
        answer = None
    fix = f"Settings > Environments > New environment {name!r}" + (
        ", with required reviewers (the production approvers)" if env.get("protected") else ""
    )
    if not answer:
        return Finding("github", f"environment {name}", MISSING, "no such environment", fix)
    reviewers = [
        reviewer
        for rule in answer.get("protection_rules", [])
        if rule.get("type") == "required_reviewers"
        for reviewer in rule.get("reviewers", [])
    ]
    if env.get("protected") and not reviewers:
        return Finding("github", f"environment {name}", MISSING, "protected in mlops.yaml, no reviewers", fix)
    return Finding("github", f"environment {name}", OK, f"{len(reviewers)} reviewer(s)")


def _protection(repo: Repo, github: GitHub, repository: str) -> list[Finding]:
    branch = default_branch(repo.root)
    where = f"branch protection of {branch}"
    fix = f"Settings > Branches > {branch}: require pull request reviews"
    try:
        rules = github.get(f"repos/{repository}/branches/{branch}/protection") or {}
    except MlopsError as exc:
        return [Finding("github", where, MISSING, str(exc), fix)]
    found = []
    checks = rules.get("required_status_checks") or {}
    named = set(checks.get("contexts") or []) | {c.get("context") for c in checks.get("checks") or []}
    lacking = [c for c in PR_CHECKS if c not in named]
    found.append(
        Finding(
            "github",
            f"{where}: required checks",
            MISSING if lacking else OK,
            f"pr.yml's {', '.join(lacking)} not required" if lacking else ", ".join(PR_CHECKS),
            f"{fix}; require status checks {', '.join(lacking)}" if lacking else "",
        )
    )
    reviews = rules.get("required_pull_request_reviews") or {}
    for key, what in (
        ("dismiss_stale_reviews", "dismiss stale approvals when new commits are pushed"),
        ("require_code_owner_reviews", "require review from code owners"),
    ):
        on = bool(reviews.get(key))
        found.append(judged("github", f"{where}: {what}", on, ("on", "off"), f"{fix}; {what}"))
    owners = (repo.root / ".github" / "CODEOWNERS").is_file()
    said = (".github/CODEOWNERS", "no .github/CODEOWNERS")
    found.append(
        judged(
            "github", "CODEOWNERS", owners, said, "write .github/CODEOWNERS (the template's names the owners)"
        )
    )
    return found


def check_runners(repo: Repo, github: GitHub, repository: str) -> list[Finding]:
    """A runner online carrying every label of each self-hosted set mlops.yaml names."""
    answer = github.get(f"repos/{repository}/actions/runners")
    pages = answer if isinstance(answer, list) else [answer]
    online = [
        {label["name"] for label in runner.get("labels", [])}
        for page in pages
        for runner in (page or {}).get("runners", [])
        if runner.get("status") == "online"
    ]
    runners = repo.project.get("runners") or {}
    sets = {"gpu": runners.get("gpu") or []}
    if repo.project["deploy"]["target"] == "local":
        sets["deploy"] = runners.get("deploy") or []
    found = []
    for role, labels in sets.items():
        wanted = set(labels)
        ok = any(wanted <= have for have in online)
        fix = f"RUNNER_ROLE={role} scripts/runners/register-runner.sh on that machine"
        said = ("online", "no runner online with these labels")
        found.append(judged("github", f"{role} runner [{', '.join(labels)}]", ok, said, fix))
    return found


def check_registry(repo: Repo, registry: Any) -> list[Finding]:
    """Reachable, every model readable; each role's permissions when the user is the admin."""
    from ..registry.client import is_local

    if registry.missing():
        return [Finding("registry", registry.uri, MISSING, "no registry here", "see README: Going to a team")]
    try:
        listed = registry.aliases()
    except MlopsError as exc:
        return [Finding("registry", registry.uri, MISSING, str(exc), "MLFLOW_TRACKING_URI and credentials")]
    found = [
        Finding(
            "registry",
            registry.uri,
            WARN if is_local(registry.uri) else OK,
            "a local sqlite file: one machine's" if is_local(registry.uri) else "reachable",
            "make team-registry (README: Going to a team)" if is_local(registry.uri) else "",
        )
    ]
    for model in sorted(repo.models):
        there = model in listed
        found.append(
            Finding(
                "registry",
                f"model {model}",
                OK if there else WARN,
                "readable" if there else "not registered (or not readable with these credentials)",
                "" if there else "team_registry.py roles, or `mlops register`",
            )
        )
    return found + role_permissions(repo, registry)


def role_permissions(repo: Repo, registry: Any) -> list[Finding]:
    """As the registry's admin: each role's effective permission on the experiment and each
    model against ROLES (MLflow answers only an admin's question about another user)."""
    import os

    if is_sqlite(registry.uri) or os.environ.get("MLFLOW_TRACKING_USERNAME") != "admin":
        return []
    from mlflow.server.auth.client import AuthServiceClient

    auth = AuthServiceClient(registry.uri)
    experiment = registry.experiment_id()
    found = []
    for role, grants in ROLES.items():
        targets = [("experiment", experiment, grants["experiment"])]
        targets += [("registered_model", m, grants["models"]) for m in sorted(repo.models)]
        wrong = []
        for kind, name, wanted in targets:
            try:
                have = auth.get_user_permission(role, kind, name).permission
            except Exception as exc:  # an unknown user, say: MLflow's words
                have = f"unreadable ({str(exc).splitlines()[0][:80]})"
            if have != wanted:
                wrong.append(f"{kind} {name}: {have} (expected {wanted})")
        found.append(
            Finding(
                "registry",
                f"role {role}",
                MISSING if wrong else OK,
                "; ".join(wrong) or "as ROLES says",
                "team_registry.py roles" if wrong else "",
            )
        )
    return found


def is_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:")


def check_signing(repo: Repo) -> list[Finding]:
    """The trust policy's keys in the repository (what every machine verifies with)."""
    found = []
    for name, relative in sorted(((repo.project.get("signing") or {}).get("keys") or {}).items()):
        there = (repo.root / str(relative)).is_file() and not outside(repo.root, repo.root / str(relative))
        said = ("present", "missing: nothing it signed verifies")
        found.append(judged("signing", f"key {name} ({relative})", there, said, "mlops keys init; commit it"))
    if not found and not (repo.project.get("signing") or {}).get("identities"):
        found.append(
            Finding("signing", "trust policy", MISSING, "no signer in mlops.yaml", "mlops keys init")
        )
    return found


def check_storage(repo: Repo) -> list[Finding]:
    """The DVC remote (the embedded local one is one machine's) and the kserve model store."""
    found = []
    proc = subprocess.run(
        ["dvc", "remote", "list", "--project"], cwd=repo.root, capture_output=True, text=True
    )
    default = subprocess.run(
        ["dvc", "remote", "default", "--project"], cwd=repo.root, capture_output=True, text=True
    )
    remotes = dict(line.split(None, 1) for line in proc.stdout.splitlines() if len(line.split(None, 1)) == 2)
    name = default.stdout.strip()
    url = remotes.get(name, "")
    if not url or "://" not in url:
        found.append(
            Finding(
                "storage",
                f"DVC remote {name or '(none)'}",
                WARN,
                f"{url or 'none'}: one machine's",
                "dvc remote add -d team s3://bucket/dvc",
            )
        )
    else:
        found.append(_bucket("storage", f"DVC remote {name}", url))
    kserve = (
        (repo.project["deploy"].get("kserve") or {}) if repo.project["deploy"]["target"] == "kserve" else {}
    )
    store = str(kserve.get("model_store") or "")
    if repo.project["deploy"]["target"] == "kserve":
        if store.startswith(("s3://", "gs://")):
            found.append(_bucket("storage", "model store", store))
        else:
            found.append(
                Finding(
                    "storage",
                    "model store",
                    OK if store else MISSING,
                    store or "not set",
                    "" if store else "deploy.kserve.model_store in mlops.yaml",
                )
            )
    return found


def _bucket(area: str, check: str, url: str) -> Finding:
    """An s3:// (or gs://, through its S3 API) bucket answering this machine's keys."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("s3", "gs"):
        return Finding(area, check, OK, f"{url} (not checked: {parsed.scheme}://)")
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        boto3.client("s3").head_bucket(Bucket=parsed.netloc)
    except (BotoCoreError, ClientError) as exc:
        return Finding(
            area,
            check,
            MISSING,
            f"{url}: {str(exc).splitlines()[0][:120]}",
            "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_ENDPOINT_URL for MinIO)",
        )
    return Finding(area, check, OK, f"{url}: reachable")
