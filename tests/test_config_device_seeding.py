from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from fsl_utils import budget, describe_device, get_device, is_fast, seed_everything


@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), ("0", False), ("", False), ("no", False)])
def test_budget_follows_fsl_fast(monkeypatch, value, expected):
    monkeypatch.setenv("FSL_FAST", value)
    assert is_fast() is expected
    assert budget(full=1000, fast=10) == (10 if expected else 1000)


def test_get_device_prefers_accelerators_and_honours_override(monkeypatch):
    monkeypatch.delenv("FSL_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert get_device().type == expected
    monkeypatch.setenv("FSL_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_get_device_fakes_cuda_preference(monkeypatch):
    monkeypatch.delenv("FSL_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device().type == "cuda"


@pytest.mark.parametrize("bad", ["tpu", "gpu0"])
def test_get_device_rejects_unknown_names(monkeypatch, bad):
    monkeypatch.setenv("FSL_DEVICE", bad)
    with pytest.raises(ValueError, match="FSL_DEVICE"):
        get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_get_device_unavailable_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        get_device("cuda")


def test_describe_device_is_one_line():
    text = describe_device("cpu")
    assert "\n" not in text and text.startswith("device: cpu") and torch.__version__ in text


def test_seed_everything_reproduces_all_sources():
    def draw(g):
        return random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=g))

    first = draw(seed_everything(123))
    second = draw(seed_everything(123))
    assert first == second
    assert draw(seed_everything(124)) != first


def test_seed_everything_rejects_bad_seed():
    with pytest.raises(ValueError, match="non-negative"):
        seed_everything(-1)


def test_seed_everything_deterministic_flag():
    seed_everything(0, deterministic=True)
    try:
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
