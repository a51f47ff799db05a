"""mlops-gitops: the engine of a GitOps repository for machine-learning models."""

from __future__ import annotations

__version__ = "0.1.0"
