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
