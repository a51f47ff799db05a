"""Jinja extension that tells the hooks where the template's own files are.

cookiecutter's ``_repo_dir`` is relative for a local template (and the hooks run
inside the new project, so they cannot resolve it), and cruft sets no ``_repo_dir``
at all.  This module is imported from the template root (cookiecutter and cruft put
that root on ``sys.path``), so its own ``__file__`` is the one reliable anchor: under
cruft it is cruft's clone at the requested commit, which is what ``cruft update``
needs.  Template-only: it is not copied into generated repositories.
"""

from __future__ import annotations

from pathlib import Path

from jinja2.ext import Extension


class TemplateRoot(Extension):
    def __init__(self, environment):  # type: ignore[no-untyped-def]
        super().__init__(environment)
        environment.globals["template_root"] = str(Path(__file__).resolve().parent)
