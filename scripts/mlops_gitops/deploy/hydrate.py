"""`mlops hydrate`: the rendered InferenceServices (deploy.kserve.output_dir) committed to their
own branch, for Argo CD or Flux to sync: the "hydrated manifests" of Argo CD's source hydrator.

main holds what people decide (the manifests); the branch holds what the reconciler made of it
(storageUri in the model store, the pinned runtime, the logger), one commit per change, each
naming the main commit it was rendered from. Point the Argo CD Application (or Flux
GitRepository) at that branch and output_dir's environment folder.

Only the environments rendered here are replaced (`<env>/` folders present in output_dir, or
those named); the others stay as the branch has them, so one reconcile job per environment can
publish without undoing another's. The commit is made with git's plumbing through a temporary
index: the working tree and the current branch never change. A tree equal to the branch's is
no commit ("unchanged"): re-running converges.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import MlopsError
from ..core.gitinfo import git, push_credentials

BRANCH_PATTERN = r"^[A-Za-z0-9._/-]+$"


@dataclass(frozen=True)
class Hydrated:
    branch: str
    commit: str  # the branch's tip after this
    changed: bool
    environments: list[str]
    pushed: bool


def hydrate(root: Path, folders: dict[str, Path], branch: str, push: bool, source: str) -> Hydrated:
    """Commit each environment's rendered folder (`folders`: env -> folder) as `<env>/` onto
    `branch` (made when absent)."""
    import re

    if not re.match(BRANCH_PATTERN, branch) or ".." in branch or branch.startswith(("-", "/")):
        raise MlopsError(f"--branch {branch!r}: not a branch name (expected e.g. rendered-manifests)")
    remote = bool(git(root, "remote", check=False)) and push
    if remote:  # the branch as the remote has it: another job may have published since
        git(root, "fetch", "--quiet", "origin", f"+refs/heads/{branch}:refs/heads/{branch}", check=False)
    tip = git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if tip:
            git(root, "read-tree", tip, env=index)
        else:
            git(root, "read-tree", "--empty", env=index)
        for env, folder in sorted(folders.items()):
            git(root, "rm", "-r", "--cached", "--quiet", "--ignore-unmatch", "--", env, env=index)
            for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
                blob = git(root, "hash-object", "-w", "--", str(path))
                name = f"{env}/{path.relative_to(folder).as_posix()}"
                git(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", env=index)
        tree = git(root, "write-tree", env=index)
    envs = sorted(folders)
    if tip and git(root, "rev-parse", tip + "^{tree}") == tree:
        return Hydrated(branch, tip, False, envs, False)
    message = f"Rendered {', '.join(envs) or 'nothing'} from {source[:12]}\n\nSource: {source}\n"
    parents = ["-p", tip] if tip else []
    commit = git(root, "commit-tree", tree, *parents, "-F", "-", input=message)
    git(root, "update-ref", f"refs/heads/{branch}", commit, *([tip] if tip else []))
    if remote:
        pushed = git(
            root,
            "push",
            "--quiet",
            "origin",
            f"refs/heads/{branch}:refs/heads/{branch}",
            check=False,
            env=push_credentials(),
        )
        if (
            git(root, "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}", check=False)
            != commit
        ):
            # `git push` says nothing on success; ask the remote what it has now
            ref = f"refs/heads/{branch}"
            asked = git(root, "ls-remote", "origin", ref, check=False, env=push_credentials())
            remote_tip = asked.split()
            if not remote_tip or remote_tip[0] != commit:
                raise MlopsError(
                    f"git push origin {branch}: refused ({pushed or 'no answer'}); expected write access "
                    "(contents: write for the publishing job)"
                )
    return Hydrated(branch, commit, True, envs, remote)
