"""The test suite's one rule for a missing tool (Chromium and playwright, bubblewrap, JupyterHub): a test
that needs it skips with the reason on a maintainer's machine and fails under CI, where .ci/run installs
every tool. CI counts as set unless ``CI`` is empty, ``0``, ``false`` or ``no``."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(what: str, why: str | None) -> None:
    """Nothing when ``why`` is None (nothing is missing); otherwise fail the calling test under CI and
    skip it elsewhere, with ``what`` (the kind of test) and ``why`` (what is missing) in the message."""
    if why is None:
        return
    if in_ci():
        pytest.fail(f"The {what} must run in CI but {why}.")
    pytest.skip(f"{what} skipped: {why}")
