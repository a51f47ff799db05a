"""Settings moved between YAML files as text (`mlops model add --like`, `mlops rollback`): the
entries move whole, in block or flow style, with the comments inside them, and the rest of the
file stays byte for byte."""

from __future__ import annotations

import yaml
from mlops_gitops.core import yamlio

BASE = """# header comment
model: fraud
version: 2
traffic:
- version: 1
  percent: 80
- {version: 2, percent: 20}
# the target: where it runs
target:
  kind: local  # inline comment

  replicas: 2
shadow: {version: 3}
"""
EARLIER = """model: fraud
version: 1
target:
  kind: kserve
"""


def test_entries_span_their_block_sequences_and_blank_lines_but_not_the_next_comment() -> None:
    found = yamlio.entries(BASE)
    lines = BASE.splitlines()
    assert [lines[i] for i in range(*found["traffic"])] == [
        "traffic:",
        "- version: 1",
        "  percent: 80",
        "- {version: 2, percent: 20}",
    ]
    assert [lines[i] for i in range(*found["target"])] == [
        "target:",
        "  kind: local  # inline comment",
        "",
        "  replicas: 2",
    ]
    assert yamlio.entries("models:\n  a:\n    x: 1\n  b-c:\n    x: 2\n", indent=0) == {"models": (0, 5)}
    assert yamlio.entries("  a:\n    x: 1\n  b-c:\n    x: 2\n", indent=2) == {"a": (0, 2), "b-c": (2, 4)}


def test_replacing_entries_restores_the_routing_and_keeps_the_rest() -> None:
    text = BASE
    for key in ("version", "traffic", "shadow"):
        text = yamlio.replace_entry(text, key, EARLIER)
    assert yaml.safe_load(text) == {
        "model": "fraud",
        "version": 1,
        "target": {"kind": "local", "replicas": 2},
    }
    assert text.startswith("# header comment\n") and "# the target: where it runs\n" in text
    assert "kind: local  # inline comment" in text
    added = yamlio.replace_entry(EARLIER, "shadow", BASE)
    assert added.endswith("shadow: {version: 3}\n") and yaml.safe_load(added)["shadow"] == {"version": 3}
