"""What git says about the working tree: commit, branch, dirty flag."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .errors import MlopsError


def git(root: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise MlopsError(
            f"git {' '.join(args)}: {proc.stderr.strip() or 'failed'} (expected a git repository)"
        )
    return proc.stdout.strip()


def head_info(root: Path) -> dict[str, str]:
    commit = git(root, "rev-parse", "HEAD", check=False) or "none"
    branch = git(root, "rev-parse", "--abbrev-ref", "HEAD", check=False) or "none"
    dirty = bool(git(root, "status", "--porcelain", "--untracked-files=no", check=False))
    return {"commit": commit, "branch": branch, "dirty": "true" if dirty else "false"}


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
