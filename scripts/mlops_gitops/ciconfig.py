"""Values from mlops.yaml as GITHUB_OUTPUT lines, for workflow expressions.

Runs before the project is installed (a workflow's first job), so it needs only PyYAML:
`make -s ci-config >> "$GITHUB_OUTPUT"` gives `python=3.11`, `gpu_labels=[...]`, which
`runs-on: ${{ fromJSON(needs.config.outputs.gpu_labels) }}` turns into runner labels, and
`environments=[...]` in promotion order (only $ONLY when it is set), for a job matrix, and
`production=<name>`, the last environment of the promotion order (evidence packs are built there),
and `deploy_labels=[...]`, where reconcile.yml runs: the deploy host's runner (runners.deploy)
for the local target, whose model servers live there; GitHub's ubuntu-latest for kserve (it
applies with a kubeconfig, or renders for Argo CD / Flux); and `watch_labels=[...]`, where
drift.yml runs: where the inference logs are, the deploy host (runners.deploy) whose model
servers, or whose `mlops collect` volume for KServe, write them; `hydrate=true` when the kserve
target renders for Argo CD / Flux (no kube_context), with `rendered_dir=` its output_dir: then
reconcile.yml publishes the rendered files on their own branch (`mlops hydrate`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml


def lines(config: dict[str, object]) -> list[str]:
    runners = config.get("runners")
    labels = runners.get("gpu") if isinstance(runners, dict) else None
    if not isinstance(labels, list) or not labels:
        raise SystemExit("mlops.yaml: runners.gpu: missing (expected a list of runner labels)")
    declared = config.get("environments")
    environments = [e["name"] for e in declared if isinstance(e, dict)] if isinstance(declared, list) else []
    production = environments[-1] if environments else ""
    only = os.environ.get("ONLY", "")
    if only:
        if only not in environments:
            raise SystemExit(
                f"environment {only!r}: not in mlops.yaml (expected one of {', '.join(environments)})"
            )
        environments = [only]
    deploy = config.get("deploy")
    target = deploy.get("target", "local") if isinstance(deploy, dict) else "local"
    host = runners.get("deploy") if isinstance(runners, dict) else None
    host = host or ["self-hosted", "deploy"]
    deploy_labels = host if target == "local" else ["ubuntu-latest"]
    kserve = (deploy.get("kserve") if isinstance(deploy, dict) else None) or {}
    directory_mode = target == "kserve" and not kserve.get("kube_context")
    return [
        f"python={config.get('python', '3.11')}",
        f"hydrate={'true' if directory_mode else 'false'}",
        f"rendered_dir={kserve.get('output_dir', 'deploy/kserve')}",
        f"deploy_labels={json.dumps(deploy_labels)}",
        f"watch_labels={json.dumps(host)}",
        f"gpu_labels={json.dumps(labels)}",
        f"environments={json.dumps(environments)}",
        f"production={production}",
    ]


def main() -> None:
    config = yaml.safe_load(Path("mlops.yaml").read_text())
    sys.stdout.write("\n".join(lines(config)) + "\n")


if __name__ == "__main__":
    main()
