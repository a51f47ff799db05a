"""Evidence packs: what an auditor asks for about one deployed model version, in one zip.

`mlops evidence <model> --env E [--version N] -o pack.zip` gathers, for the version that runs
(or ran) in E (one gatherer per file, `gatherers.py`):

* ``lineage.json``: data hashes, code commit, params, packages and Python, runner and device,
  the artifact's sha256 as registered and as stored now;
* ``metrics.json`` and ``report/``: evaluation metrics against the thresholds of
  ``model.yaml``, fairness, and the champion/challenger report (from the version's run);
* ``policy/decisions.json`` and ``policy/rego/``: every decision `mlops check --record` kept
  for the version, each with the sha256 of the policy files that made it, and those files;
* ``approvals.json``: the approvals that count (what the gate read from GitHub's API or
  its review event when it decided: distinct code owners, neither promoter nor trainer), the
  git history of the manifest (who committed and merged the change), the ``Approved-by:`` and
  ``Reviewed-by:`` trailers as claims that never count, CODEOWNERS of the path;
* ``deployments.json``: every deployment record of the model in E (rollbacks with their
  ``recovery_s``, break-glass events) and the version's history from the registry;
* ``monitoring/``: the drift and live-performance history of the version and its drift reports;
* ``supply-chain/``: the signature checked as the reconciler checks it (``signature.json``),
  the bundles and the signed SLSA provenance statement kept with the version, and
  ``ml-bom.cdx.json``, a CycloneDX 1.6 ML-BOM (``mlbom.py``: the model card, the datasets
  with their hashes, the training run's packages, the signer) that CycloneDX's own strict
  validator accepted;
* ``model-card.md``: ``models/<model>/card.md`` filled in from the facts above (a Jinja
  template: ``model``, ``version``, ``lineage``, ``metrics``, ``thresholds``, ``fairness``,
  ``environment``, ``deployment``, ``drift``, ``performance``, ``decisions``, ``approvals``);
* ``summary.html``: one self-contained page, the proof grouped by the controls it serves
  (``controls.yaml``, data; the policies' METADATA names theirs);
* ``index.json``: the sha256 and size of every other file, the controls and the gaps.

The pack holds no clock reading of its own: the same inputs give the same bytes (sorted JSON,
fixed zip timestamps). `mlops evidence verify pack.zip` checks every file against the index,
that nothing was added or removed, and that the required files are there; the index's own
sha256 (printed by both commands) can be compared with one kept elsewhere (``--digest``).

May import: core, registry, gate, deploy, monitor.
"""

from __future__ import annotations

from .build import build, resolve_version, write_packs
from .controls import same_control
from .pack import Pack, Verdict, index, to_zip, verify, write
from .render import render_card, render_summary

__all__ = [
    "Pack",
    "Verdict",
    "build",
    "index",
    "render_card",
    "render_summary",
    "resolve_version",
    "same_control",
    "to_zip",
    "verify",
    "write",
    "write_packs",
]
