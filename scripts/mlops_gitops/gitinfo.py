"""What git says about the working tree: commit, branch, dirty flag."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .errors import MlopsError


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
    }


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


def propose(root: Path, branch: str, path: str, text: str, message: str, checkout: bool) -> str:
    """Commit `text` as `path` on a new branch made from HEAD; its commit.

    The commit is made with git's plumbing through a temporary index, so neither the working
    tree nor the current branch changes; with `checkout` the branch is then switched to. A
    failure leaves nothing behind: no branch, no changed file.
    """
    head = git(root, "rev-parse", "HEAD")
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
