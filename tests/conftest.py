"""Shared fixtures: the real datasets (never skipped: missing data is an error)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from fsl_utils.data import load_cifar10, load_omniglot  # noqa: E402


@pytest.fixture(scope="session")
def omniglot_background():
    return load_omniglot("background")


@pytest.fixture(scope="session")
def omniglot_evaluation():
    return load_omniglot("evaluation")


@pytest.fixture(scope="session")
def cifar_train():
    return load_cifar10(train=True)
