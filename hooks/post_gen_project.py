"""Copy the machinery into the new repository, keep the answers, make the first commit.

The template directory holds only the files that differ per project; everything else
(workflows, pipelines, policies, the engine, tests) is the template checkout's own
tracked files, copied verbatim.  A copied file never overwrites a rendered one, the
instance's own renderings of templated paths (``models/<default>/...``) are skipped,
and template-only files (``_template_only`` in cookiecutter.json) stay behind.
Only the standard library is used.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Rendered by cookiecutter. A JSON object never contains three double quotes in a row outside
# an escape and ends with "}", so any answer survives this raw string.
CONTEXT = json.loads(r"""{{ cookiecutter | jsonify }}""")
# Set by local_extensions.TemplateRoot: the absolute root of the template checkout
# (under cruft: its clone at the requested commit).
TEMPLATE_ROOT = r"""{{ template_root | default("") }}"""
# Everything below is plain Python: cookiecutter must not render it.
# {% raw %}
TEMPLATE_DIR = "{{cookiecutter.project_slug}}"
FIRST_COMMIT_MESSAGE = "Initial commit from mlops-gitops-template"


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def find_template_root(tmp: Path) -> Path:
    """The template checkout: the extension's answer, else _repo_dir, else a clone."""
    for candidate in (TEMPLATE_ROOT, CONTEXT.get("_repo_dir", "")):
        if candidate and Path(candidate).is_absolute() and (Path(candidate) / "cookiecutter.json").is_file():
            return Path(candidate)
    template, commit = CONTEXT.get("_template"), CONTEXT.get("_commit")
    if not template:
        fail("cannot find the template's files: no template_root, _repo_dir or _template in the context")
    clone = tmp / "template"
    run(["git", "clone", "--quiet", str(template), str(clone)])
    if commit:
        run(["git", "-C", str(clone), "checkout", "--quiet", str(commit)])
    return clone


def run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def tracked_files(root: Path) -> list[str]:
    if (root / ".git").exists():
        out = run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        return [p for p in out.split("\0") if p and ((root / p).is_file() or (root / p).is_symlink())]
    # Not a git checkout (an unpacked archive): every file but caches and local state.
    skip_dirs = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "mlruns"}
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip_dirs]
        found += [(Path(dirpath) / f).relative_to(root).as_posix() for f in filenames]
    return found


def rendered_patterns(root: Path) -> list[str]:
    """Paths of the template directory with every templated part as a wildcard."""
    base = root / TEMPLATE_DIR
    patterns = []
    for path in base.rglob("*"):
        if path.is_file():
            parts = path.relative_to(base).parts
            patterns.append("/".join("*" if "{{" in part else part for part in parts))
    return patterns


def is_template_only(rel: str, template_only: list[str]) -> bool:
    return any(rel == entry or (entry.endswith("/") and rel.startswith(entry)) for entry in template_only)


def matches(rel: str, pattern: str) -> bool:
    a, b = rel.split("/"), pattern.split("/")
    return len(a) == len(b) and all(fnmatch.fnmatchcase(x, y) for x, y in zip(a, b, strict=True))


def copy_machinery(root: Path, dest: Path) -> int:
    template_only = list(CONTEXT.get("_template_only", []))
    patterns = rendered_patterns(root)
    copied = 0
    for rel in tracked_files(root):
        if is_template_only(rel, template_only) or any(matches(rel, p) for p in patterns):
            continue
        target = dest / rel
        if target.exists() or target.is_symlink():
            continue  # never overwrite a rendered file
        target.parent.mkdir(parents=True, exist_ok=True)
        source = root / rel
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copyfile(source, target)
            shutil.copymode(source, target)
        copied += 1
    return copied


def write_answers(dest: Path) -> None:
    answers = {k: v for k, v in sorted(CONTEXT.items()) if not k.startswith("_")}
    (dest / ".cookiecutter.json").write_text(json.dumps(answers, indent=2) + "\n")


def write_cruft_state(dest: Path, root: Path) -> None:
    """Under cruft (its context carries `_commit`), write the `.cruft.json` that cruft writes once
    this hook has run, with the same bytes, so that it is part of the first commit.

    cruft writes {template, commit, checkout, context: {cookiecutter: answers in cookiecutter.json's
    order, then _template and _commit}, directory}, indented by 2, and a newline. `cruft create
    --checkout/--directory` are not visible here: with them cruft's own write differs, and git shows
    the file modified, still tracked.
    """
    if "_commit" not in CONTEXT or "_template" not in CONTEXT:
        return
    order = [k for k in json.loads((root / "cookiecutter.json").read_text()) if k != "__prompts__"]
    order += ["_template", "_commit"]
    answers = {k: CONTEXT[k] for k in order if k in CONTEXT}
    answers.update({k: v for k, v in sorted(CONTEXT.items()) if k not in answers})
    state = {
        "template": CONTEXT["_template"],
        "commit": CONTEXT["_commit"],
        "checkout": None,
        "context": {"cookiecutter": answers},
        "directory": None,
    }
    text = json.dumps(state, ensure_ascii=False, indent=2, separators=(",", ": ")) + "\n"
    (dest / ".cruft.json").write_text(text, encoding="utf-8")


def git_init(dest: Path) -> None:
    """git init + first commit; a missing git identity falls back to the template's."""
    if shutil.which("git") is None:
        print("warning: git not found; the repository was not initialised", file=sys.stderr)
        return
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=dest)
    run(["git", "add", "--all"], cwd=dest)
    identity: list[str] = []
    if subprocess.run(["git", "config", "user.email"], cwd=dest, capture_output=True).returncode != 0:
        identity = [
            "-c",
            "user.name=mlops-gitops-template",
            "-c",
            "user.email=mlops-gitops-template@localhost",
        ]
    run(["git", *identity, "commit", "--quiet", "--no-verify", "-m", FIRST_COMMIT_MESSAGE], cwd=dest)


def main() -> None:
    dest = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        root = find_template_root(Path(tmp))
        copy_machinery(root, dest)
        write_cruft_state(dest, root)
    write_answers(dest)
    git_init(dest)


if __name__ == "__main__":
    main()
# {% endraw %}
