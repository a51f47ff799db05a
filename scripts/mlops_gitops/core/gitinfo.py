"""What git says about the working tree: commit, branch, dirty flag."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .errors import MlopsError


def push_credentials() -> dict[str, str]:
    """What `git push` needs in a workflow whose checkout keeps no credentials
    (persist-credentials: false): the job's token (GH_TOKEN or GITHUB_TOKEN) as the same HTTP
    header actions/checkout would have written, passed through the environment of this one git
    command (GIT_CONFIG_*), never in its arguments or in .git/config. Nothing without a token."""
    token = os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")
    if not token:
        return {}
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    index = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    return {
        "GIT_CONFIG_COUNT": str(index + 1),
        f"GIT_CONFIG_KEY_{index}": f"http.{server}/.extraheader",
        f"GIT_CONFIG_VALUE_{index}": f"AUTHORIZATION: basic {basic}",
    }


def git(
    root: Path, *args: str, check: bool = True, input: str | None = None, env: dict[str, str] | None = None
) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=root,
        capture_output=True,
        text=True,
        input=input,
        env={**os.environ, **env} if env else None,
    )
    if check and proc.returncode != 0:
        raise MlopsError(
            f"git {' '.join(args)}: {proc.stderr.strip() or 'failed'} (expected a git repository)"
        )
    return proc.stdout.strip()


def head_info(root: Path, depends_on: list[str] | None = None) -> dict[str, Any]:
    """Commit, branch and dirty flag. Dirty means a tracked file changed, or a file in
    `depends_on` (repository-relative paths) is not committed at all: a commit that does not
    hold what the work depends on (an untracked dvc.lock, a new stage) cannot reproduce it."""
    commit = git(root, "rev-parse", "HEAD", check=False) or "none"
    branch = git(root, "rev-parse", "--abbrev-ref", "HEAD", check=False) or "none"
    changed = bool(git(root, "status", "--porcelain", "--untracked-files=no", check=False))
    untracked = untracked_files(root, depends_on or [])
    return {
        "commit": commit,
        "branch": branch,
        "dirty": "true" if changed or untracked else "false",
        "untracked": untracked,
        "uncommitted": uncommitted_files(root, depends_on or []),
    }


def uncommitted_files(root: Path, paths: list[str]) -> list[str]:
    """Those of `paths` whose content HEAD does not hold: changed (staged or not) or not in git."""
    if not paths:
        return []
    proc = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", *paths],
        cwd=root,
        capture_output=True,
        text=True,
    )  # not git(): it strips the first line's leading status column
    lines = proc.stdout.splitlines() if proc.returncode == 0 else []
    return sorted({line[3:].split(" -> ")[-1].strip('"') for line in lines if len(line) > 3})


def untracked_files(root: Path, paths: list[str]) -> list[str]:
    """Those of `paths` that exist but git does not track (ignored ones are not git's business)."""
    if not paths:
        return []
    out = git(root, "ls-files", "--others", "--exclude-standard", "--", *paths, check=False)
    return sorted(set(out.splitlines()))


def files_at(root: Path, rev: str, directory: str, suffixes: tuple[str, ...]) -> dict[str, str]:
    """{path: text} of the files under `directory` at `rev` whose names end with `suffixes`,
    read in one `git cat-file --batch` (not one process per file)."""
    names = [
        n
        for n in git(root, "ls-tree", "-r", "--name-only", rev, "--", directory).splitlines()
        if n.endswith(suffixes)
    ]
    if not names:
        return {}
    proc = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=root,
        input="".join(f"{rev}:{name}\n" for name in names).encode(),
        capture_output=True,
        check=True,
    )
    out, texts, at = proc.stdout, {}, 0
    for name in names:
        end = out.index(b"\n", at)
        size = int(out[at:end].split()[2])  # "<oid> blob <size>"
        texts[name] = out[end + 1 : end + 1 + size].decode("utf-8")
        at = end + 1 + size + 1
    return texts


def show_file(root: Path, rev: str, path: str) -> str:
    """The file `path` as commit `rev` has it, exactly (git() strips what it prints); "" if absent."""
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""


def default_branch(root: Path) -> str:
    """The branch promotions start from and merge into: the remote's default (origin/HEAD), else
    a local `main` or `master`, else the current branch (a repository with neither)."""
    remote = git(root, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD", check=False)
    candidates = [remote.split("/", 1)[1]] if "/" in remote else []
    for name in [*candidates, "main", "master"]:
        if git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{name}", check=False):
            return name
    return git(root, "rev-parse", "--abbrev-ref", "HEAD")


def branch_exists(root: Path, branch: str) -> bool:
    """A local branch, or one on origin, of that name (someone else's push counts)."""
    return any(
        git(root, "rev-parse", "--verify", "--quiet", ref, check=False)
        for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}")
    )


def fresh_branch(root: Path, branch: str) -> str:
    """`branch`, or `branch-2`, `branch-3`, ...: the first name no local or remote branch has."""
    name, n = branch, 1
    while branch_exists(root, name):
        n += 1
        name = f"{branch}-{n}"
    return name


def pending_branch(root: Path, branch: str, path: str, text: str, into: str) -> str | None:
    """A local branch named `branch` (or `branch-N`) not merged into `into` whose tip holds `text`
    as `path`: the same proposal made before and still open (a re-run converges on it)."""
    refs = git(
        root, "for-each-ref", "--format=%(refname:short)", f"refs/heads/{branch}", f"refs/heads/{branch}-*"
    )
    for name in refs.split():
        if name != branch and not re.fullmatch(re.escape(branch) + r"-\d+", name):
            continue
        if not merged(root, name, into) and show_file(root, name, path) == text:
            return name
    return None


def merged(root: Path, rev: str, into: str) -> bool:
    """True when `rev` is already in `into`'s history (merged, or never ahead of it)."""
    return (
        subprocess.run(
            ["git", "merge-base", "--is-ancestor", rev, into], cwd=root, capture_output=True
        ).returncode
        == 0
    )


def commit_on_branch(
    root: Path, branch: str, path: str, text: str, message: str, checkout: bool, base: str = "HEAD"
) -> str:
    """Commit `text` as `path` on a new branch made from `base`; its commit.

    The commit is made with git's plumbing through a temporary index, so neither the working
    tree nor the current branch changes; with `checkout` the branch is then switched to. A
    failure leaves nothing behind: no branch, no changed file.
    """
    head = git(root, "rev-parse", base)
    listed = git(root, "ls-tree", head, "--", path).split()
    mode = listed[0] if listed else "100644"
    blob = git(root, "hash-object", "-w", "--stdin", input=text)
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(root, "read-tree", head, env=index)
        git(root, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=index)
        tree = git(root, "write-tree", env=index)
    sign = ["-S"] if git(root, "config", "--bool", "commit.gpgsign", check=False) == "true" else []
    commit = git(root, "commit-tree", tree, "-p", head, *sign, "-F", "-", input=message)
    git(root, "branch", branch, commit)
    if checkout:
        try:
            git(root, "switch", "--quiet", branch)
        except BaseException:
            git(root, "branch", "--quiet", "-D", branch, check=False)
            raise
    return commit


TRAILERS = re.compile(
    r"^(Approved-by|Reviewed-by|Acked-by|Signed-off-by):\s*(.+)$", re.MULTILINE | re.IGNORECASE
)


def manifest_history(root: Path, path: str, version: int) -> list[dict[str, Any]]:
    """The commits (newest first) that set the manifest at `path` to `version`: author,
    committer, subject, trailers, and the merge on HEAD's first-parent line that brought it in."""
    from . import yamlio

    out = git(root, "log", "--format=%H", "--", path, check=False)
    mainline = set(git(root, "rev-list", "--first-parent", "--merges", "HEAD", check=False).split())
    found = []
    for commit in out.split():
        text = git(root, "show", f"{commit}:{path}", check=False)
        before = git(root, "show", f"{commit}~1:{path}", check=False)
        try:
            now = (yamlio.loads(text, path) or {}).get("version") if text else None
            was = (yamlio.loads(before, path) or {}).get("version") if before else None
        except MlopsError:
            continue
        if now != version or was == version:
            continue
        fields = git(root, "show", "-s", "--format=%H%x00%an <%ae>%x00%aI%x00%cn <%ce>%x00%cI%x00%B", commit)
        sha, author, authored, committer, committed, body = fields.split("\x00", 5)
        found.append(
            {
                "commit": sha,
                "author": author,
                "authored_at": authored,
                "committer": committer,
                "committed_at": committed,
                "subject": body.strip().splitlines()[0] if body.strip() else "",
                "trailers": trailers(body),
                "merge": merge_of(root, commit, mainline),
            }
        )
    return found


def merge_of(root: Path, commit: str, mainline: set[str]) -> dict[str, Any] | None:
    """The merge on HEAD's first-parent line (`mainline`: main's merges) that brought `commit`
    in, if a merge did; a merge of main into the branch ("Update branch") is not it."""
    candidates = git(
        root, "rev-list", "--ancestry-path", "--merges", "--reverse", f"{commit}..HEAD", check=False
    ).split()
    merge = next((c for c in candidates if c in mainline), None)
    if merge is None:
        return None
    sha, by, at, body = git(root, "show", "-s", "--format=%H%x00%cn <%ce>%x00%cI%x00%B", merge).split(
        "\x00", 3
    )
    return {
        "commit": sha,
        "by": by,
        "at": at,
        "subject": body.strip().splitlines()[0],
        "trailers": trailers(body),
    }


def trailers(body: str) -> list[dict[str, str]]:
    return [{"key": m.group(1).title(), "value": m.group(2).strip()} for m in TRAILERS.finditer(body)]
