"""One seeded generator for the unit tests: ``from seeds import rng`` (tests/ is on ``sys.path``,
as for tests/grading)."""

from __future__ import annotations

import torch


def rng(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``; the global random state is left alone."""
    return torch.Generator().manual_seed(seed)
