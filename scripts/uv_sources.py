"""Where pip would fetch packages, said to uv: `make install` installs the tool set with uv (same
constraints.txt, same wheels), and uv does not read pip's configuration. A machine that points
pip at a mirror or a wheel folder (pip.conf, PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS,
PIP_CERT) gets the same sources and certificate for uv, printed as shell assignments for `eval`.
Only the standard library: it runs before anything is installed.

    eval "$(python scripts/uv_sources.py .venv/bin/python)"
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

# pip's setting -> uv's environment variable (index-url and the extra ones are both lists in uv)
SETTINGS = {
    "index-url": "UV_INDEX_URL",
    "extra-index-url": "UV_EXTRA_INDEX_URL",
    "find-links": "UV_FIND_LINKS",
    "cert": "SSL_CERT_FILE",
}


def pip_settings(python: str) -> dict[str, str]:
    """pip's effective settings (its configuration files and PIP_* variables), by name."""
    found: dict[str, str] = {}
    try:
        listed = subprocess.run(
            [python, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        listed = ""
    for line in listed.splitlines():  # global.find-links='/opt/wheels', :env:.cert='...'
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in SETTINGS:
            found[name] = value.strip().strip("'\"")
    for name in SETTINGS:  # the environment wins, as it does for pip
        value = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if value:
            found[name] = value
    return found


def main() -> int:
    python = sys.argv[1] if len(sys.argv) > 1 else sys.executable
    settings = pip_settings(python)
    if "extra-index-url" in settings and not os.environ.get("UV_INDEX_STRATEGY"):
        # pip takes the best match across all its indexes; uv, by default, the first index that
        # has the package at all: with pip's extra indexes, pip's rule
        print("export UV_INDEX_STRATEGY=unsafe-best-match")
    for name, value in settings.items():
        variable = SETTINGS[name]
        if variable.startswith("UV_") and os.environ.get(variable):
            continue  # uv's own setting stands
        if name in ("extra-index-url", "find-links"):
            value = " ".join(value.split())  # uv takes space-separated lists too
        print(f"export {variable}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
