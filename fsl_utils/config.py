"""Run-time budget switch shared by every notebook, test and benchmark.

``FSL_FAST=1`` shrinks episodes, epochs and images so that CI can execute every
notebook top to bottom in a couple of minutes; the default is the full budget a
student runs on a laptop CPU.
"""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}


def is_fast() -> bool:
    """Return True when ``FSL_FAST`` is set to 1/true/yes/on (read at call time)."""
    return os.environ.get("FSL_FAST", "").strip().lower() in _TRUE


#: The budget flag as it was when the package was imported (what notebooks print).
FAST: bool = is_fast()


def budget(full: T, fast: T) -> T:
    """Pick the full-mode or the FAST-mode value of a budget.

    Args:
        full: value used in a normal run (e.g. 2000 training episodes).
        fast: value used when ``FSL_FAST=1`` (e.g. 60 training episodes).

    Returns:
        ``fast`` in FAST mode, otherwise ``full``.
    """
    return fast if is_fast() else full
