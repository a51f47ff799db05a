"""Report pages on disk (drift, live performance): their names, headings and displayed paths.

A report says what it is about before anything else: its file name and its first line name the
model, the environment and the version(s), so a folder of reports, or one opened from an
issue, never needs its context guessed.
"""

from __future__ import annotations

import re
from pathlib import Path


def title(model: str, env: str, versions: list[int], what: str) -> str:
    """What a report is about, its first words: "Drift: churn v2 in staging"."""
    named = ", ".join(f"v{v}" for v in versions) or "no version"
    return f"{what}: {model} {named} in {env}"


def report_stem(kind: str, model: str, env: str, versions: list[int], at: str) -> str:
    """drift-churn-staging-v2-20261130T101500Z: a report's file name says what and when (to the
    precision of `at`, an RFC 3339 time)."""
    stamp = at.replace(":", "").replace("-", "").replace(".", "").rstrip("Z") + "Z"
    named = "+".join(f"v{v}" for v in versions) or "none"
    return f"{kind}-{model}-{env}-{named}-{stamp}"


def headed_html(path: Path, heading: str, summary: str) -> None:
    """Give a report page its title and a heading line naming model, environment and version."""
    import html as markup

    text = path.read_text(encoding="utf-8")
    banner = (
        '<header style="font:15px/1.4 system-ui,sans-serif;padding:12px 16px;border-bottom:1px solid #ddd">'
        f'<h1 style="font-size:20px;margin:0 0 4px">{markup.escape(heading)}</h1>'
        f'<p style="margin:0">{markup.escape(summary)}</p></header>'
    )
    text = text.replace("<head>", f"<head>\n<title>{markup.escape(heading)}</title>", 1)
    text = re.sub(r"<body[^>]*>", lambda m: m.group(0) + banner, text, count=1)
    path.write_text(text, encoding="utf-8")


def display(root: Path, path: Path) -> str:
    resolved = path.resolve()
    return (
        str(resolved.relative_to(root.resolve()))
        if resolved.is_relative_to(root.resolve())
        else str(resolved)
    )
