"""Values from mlops.yaml as GITHUB_OUTPUT lines, for workflow expressions.

Runs before the project is installed (a workflow's first job), so it needs only PyYAML:
`make -s ci-config >> "$GITHUB_OUTPUT"` gives `python=3.11` and `gpu_labels=[...]`, which
`runs-on: ${{ fromJSON(needs.config.outputs.gpu_labels) }}` turns into runner labels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def lines(config: dict[str, object]) -> list[str]:
    runners = config.get("runners")
    labels = runners.get("gpu") if isinstance(runners, dict) else None
    if not isinstance(labels, list) or not labels:
        raise SystemExit("mlops.yaml: runners.gpu: missing (expected a list of runner labels)")
    return [f"python={config.get('python', '3.11')}", f"gpu_labels={json.dumps(labels)}"]


def main() -> None:
    config = yaml.safe_load(Path("mlops.yaml").read_text())
    sys.stdout.write("\n".join(lines(config)) + "\n")


if __name__ == "__main__":
    main()
