"""The `mlops` command, one module per verb group. Each command parses its options, calls one
domain function and renders the result; the work lives in the packages beside it.

May import: core, registry, gate, deploy, serving, monitor, evidence. Imported by cli only.
"""

from __future__ import annotations

from . import (
    collect,
    deploy,
    evidence,
    gate,
    impact,
    incident,
    models,
    operate,
    policies,
    publish,
    registry,
    serving,
    supply,
    train,
    watch,
)
from .app import main

__all__ = [
    "collect",
    "deploy",
    "evidence",
    "gate",
    "impact",
    "incident",
    "main",
    "models",
    "operate",
    "policies",
    "publish",
    "registry",
    "serving",
    "supply",
    "train",
    "watch",
]
