"""EMA updates (Mean Teacher's teacher, BYOL's target) against a loop oracle of θ′ ← γθ′ + (1−γ)θ."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fsl_utils.ssl import cosine_ema_decay, ema_copy, ema_update


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_ema_update_matches_the_recursion_over_many_steps():
    torch.manual_seed(0)
    online = _net()
    target = ema_copy(online)
    gamma = 0.9
    oracle = {name: p.detach().numpy().copy() for name, p in target.named_parameters()}
    for _ in range(5):
        with torch.no_grad():  # a fake optimiser step
            for p in online.parameters():
                p.add_(torch.randn_like(p))
        ema_update(target, online, gamma)
        for name, p in online.named_parameters():
            theta = p.detach().numpy()
            oracle[name] = np.array([gamma * a + (1 - gamma) * b for a, b in zip(oracle[name].ravel(), theta.ravel())]).reshape(theta.shape)
    for name, p in target.named_parameters():
        np.testing.assert_allclose(p.numpy(), oracle[name], rtol=1e-5, atol=1e-6)


def test_ema_decay_extremes_and_buffers():
    torch.manual_seed(1)
    online, target = _net(), _net()
    online.train()(torch.randn(8, 3))  # moves online's BatchNorm running statistics
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, 1.0, copy_buffers=False)
    assert all(torch.equal(a, b) for a, b in zip(before, target.parameters()))
    assert not torch.equal(target[1].running_mean, online[1].running_mean)
    ema_update(target, online, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(online.parameters(), target.parameters()))
    assert torch.equal(target[1].running_mean, online[1].running_mean)


def test_ema_copy_is_frozen_and_independent():
    online = _net()
    target = ema_copy(online)
    assert not any(p.requires_grad for p in target.parameters())
    assert all(p.requires_grad for p in online.parameters())
    with torch.no_grad():
        online[0].weight.add_(1.0)
    assert not torch.equal(online[0].weight, target[0].weight)


def test_ema_update_rejects_bad_input():
    with pytest.raises(ValueError, match="decay"):
        ema_update(_net(), _net(), 1.5)
    with pytest.raises(ValueError, match="different parameters"):
        ema_update(_net(), nn.Linear(3, 2), 0.9)
    with pytest.raises(ValueError, match="shape"):
        ema_update(nn.Linear(3, 2), nn.Linear(3, 4), 0.9)


def test_cosine_ema_decay_follows_byol_schedule():
    assert cosine_ema_decay(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_ema_decay(100, 100, 0.996) == pytest.approx(1.0)
    assert cosine_ema_decay(50, 100, 0.99) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 2) + 1) / 2)
    values = [cosine_ema_decay(k, 20, 0.9) for k in range(21)]
    assert all(a <= b for a, b in zip(values, values[1:]))
    with pytest.raises(ValueError, match="total_steps"):
        cosine_ema_decay(0, 0)
