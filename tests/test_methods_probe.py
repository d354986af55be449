"""The few-shot linear probe: its weight decay is the documented objective's, it separates
separable classes under the evaluator, ignores support order and keeps the backbone frozen."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fsl_utils.data import EpisodeSampler
from fsl_utils.evaluation import evaluate
from fsl_utils.methods import LinearProbe
from seeds import rng


def test_weight_decay_is_the_mean_loss_objective_of_the_docstring():
    g = rng(0)
    y = torch.arange(3).repeat(10)
    x = torch.randn(30, 5, generator=g) + 0.8 * torch.nn.functional.one_hot(y, 5).float()  # overlapping: a unique optimum
    probe = LinearProbe(nn.Identity(), weight_decay=0.05, normalize=False)
    probe.process_support_set(x, y)
    assert probe.weight.dtype == torch.float32 and probe.weight.shape == (3, 5)
    # (1/n) sum CE + (lambda/2) ||W||^2 is minimal at the fitted (W, b): its gradient vanishes
    w, b = probe.weight.double().requires_grad_(True), probe.bias.double().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(x.double() @ w.T + b, y) + 0.5 * 0.05 * w.pow(2).sum()
    loss.backward()
    assert max(w.grad.abs().max().item(), b.grad.abs().max().item()) < 1e-3


def test_probe_separates_separable_features_under_the_evaluator():
    # class c lives around 5 * e_c: any working probe gets every query right
    data = 5 * torch.eye(6)[:, None, :] + 0.3 * torch.randn(6, 12, 6, generator=rng(1))
    result = evaluate(LinearProbe(nn.Identity()), EpisodeSampler(data, 5, 1, 5, n_episodes=20, generator=rng(2)), progress=False)
    assert result.mean == 100.0


def test_probe_ignores_support_order_and_freezes_the_backbone():
    backbone = nn.Linear(4, 4)
    probe = LinearProbe(backbone)
    x = torch.randn(8, 4, generator=rng(3))
    y = torch.tensor([0, 1, 0, 1, 2, 2, 3, 3])
    q = torch.randn(5, 4, generator=rng(4))
    probe.process_support_set(x, y)
    a = probe(q)
    assert a.shape == (5, 4) and not a.requires_grad and backbone.weight.grad is None
    perm = torch.randperm(8, generator=rng(5))
    probe.process_support_set(x[perm], y[perm])
    # the same convex optimum up to L-BFGS's tolerance
    assert torch.allclose(probe(q).softmax(1), a.softmax(1), atol=1e-3)


def test_probe_errors():
    with pytest.raises(ValueError, match="weight_decay"):
        LinearProbe(nn.Identity(), weight_decay=-1)
    with pytest.raises(RuntimeError, match="process_support_set"):
        LinearProbe(nn.Identity())(torch.zeros(2, 3))
