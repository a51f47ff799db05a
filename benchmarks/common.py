"""What every benchmark shares: import paths, quiet tools, and where results go."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "scripts", ROOT):  # the engine, and tests/ (the set-up helpers)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", DVC_NO_ANALYTICS="true")


def save(name: str, summary: dict[str, Any]) -> Path:
    """Write benchmarks/results/<name>.json (git-ignored); returns its path."""
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return out
