"""Values from mlops.yaml as GITHUB_OUTPUT lines, for workflow expressions.

Runs before the project is installed (a workflow's first job), so it needs only PyYAML:
`make -s ci-config >> "$GITHUB_OUTPUT"` gives `python=3.11`, `gpu_labels=[...]`, which
`runs-on: ${{ fromJSON(needs.config.outputs.gpu_labels) }}` turns into runner labels, and
`environments=[...]` in promotion order (only $ONLY when it is set), for a job matrix, and
`production=<name>`, the last environment of the promotion order (evidence packs are built there).
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
    return [
        f"python={config.get('python', '3.11')}",
        f"gpu_labels={json.dumps(labels)}",
        f"environments={json.dumps(environments)}",
        f"production={production}",
    ]


def main() -> None:
    config = yaml.safe_load(Path("mlops.yaml").read_text())
    sys.stdout.write("\n".join(lines(config)) + "\n")


if __name__ == "__main__":
    main()
