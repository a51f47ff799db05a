"""A change to one file of the repository, proposed as a pull request: the one way promotions
and rollbacks (and anything else that edits a manifest) reach git and GitHub.

The commit is made from the default branch (or the current one) on a new branch, with git's plumbing through a
temporary index, so neither the working tree nor the current branch changes (`checkout` then
switches to it); or, `direct`, on the current branch itself. With an authenticated `gh` the
branch is pushed and its pull request opened; otherwise the exact next step is given. A
failure leaves nothing behind: no branch, no changed file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core import yamlio
from ..core.github import open_pull_request
from ..core.gitinfo import commit_on_branch, fresh_branch, git, pending_branch


@dataclass(frozen=True)
class Proposal:
    branch: str  # where the commit is (the current branch when direct)
    commit: str
    pull_request: str  # its URL, the command that opens it, or "committed directly"
    base: str  # the branch the working tree was on: where to go back to
    checked_out: bool  # the working tree is on `branch` now
    changed: bool = True  # False: the same proposal was open already, and is the answer


def next_step(branch: str, title: str) -> str:
    quoted = title.replace("'", "'\\''")
    return f"git push -u origin {branch} && gh pr create --head {branch} --title '{quoted}' --fill"


def propose(
    root: Path,
    path: str,
    text: str,
    title: str,
    message: str,
    branch: str,
    *,
    direct: bool = False,
    checkout: bool = True,
    open_pr: bool = True,
    start: str | None = None,
) -> Proposal:
    """Commit `text` as `path` (repository-relative): on `branch`, made from `start` (a branch;
    default the current one), or `direct`ly on the current one; open the pull request, against
    `start`, when asked and `gh` can. A branch of that name (or `-N`) still open with the same
    edit is the answer (a re-run converges); one merged, stale or someone else's gets a fresh
    name (`branch-2`, ...)."""
    current = git(root, "rev-parse", "--abbrev-ref", "HEAD")  # where to go back to
    base = start or current
    if direct:
        target = root / path
        before = target.read_text(encoding="utf-8") if target.exists() else None
        try:
            yamlio.write_atomic(target, text)
            git(root, "add", "--", path)
            git(root, "commit", "--quiet", "-m", message)
        except BaseException:
            if before is not None:
                yamlio.write_atomic(target, before)
            git(root, "reset", "--quiet", "--", path, check=False)
            raise
        return Proposal(current, git(root, "rev-parse", "HEAD"), "committed directly", current, True)
    open_already = pending_branch(root, branch, path, text, base)
    if open_already:  # proposed before and not merged yet: the same proposal, not another one
        commit, said = git(root, "rev-parse", open_already), next_step(open_already, title)
        return Proposal(open_already, commit, said, current, current == open_already, changed=False)
    branch = fresh_branch(root, branch)  # a merged, stale or someone else's branch keeps its name
    commit = commit_on_branch(root, branch, path, text, message, checkout=checkout, base=base)
    pull_request = next_step(branch, title)
    if open_pr:
        pull_request = open_pull_request(root, base, branch, title, message) or pull_request
    return Proposal(branch, commit, pull_request, current, checkout)
