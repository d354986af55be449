"""The linear probe: logistic regression against scikit-learn's, on frozen features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from fsl_utils.data import EpisodeSampler
from fsl_utils.evaluation import evaluate
from fsl_utils.methods import LinearProbe
from fsl_utils.methods.probe import fit_logistic_regression
from seeds import rng


def test_fit_matches_sklearn_logistic_regression():
    g = rng(0)
    x = torch.randn(30, 5, generator=g, dtype=torch.float64)
    y = torch.arange(3).repeat(10)
    x += 0.8 * torch.nn.functional.one_hot(y, 5)[:, :5].double()  # overlapping classes: a unique optimum
    lam = 0.05
    W, b = fit_logistic_regression(x, y, 3, weight_decay=lam, max_iter=500)
    # sklearn minimises C * sum(log loss) + ||W||^2 / 2, i.e. ours times C * n when C = 1 / (lam * n)
    ref = LogisticRegression(C=1 / (lam * len(x)), tol=1e-10, max_iter=10_000).fit(x.numpy(), y.numpy())
    ours = torch.softmax(x @ W.T + b, 1).numpy()
    np.testing.assert_allclose(ours, ref.predict_proba(x.numpy()), atol=1e-4)
    # softmax logits are defined up to a per-row shift; sklearn centres them, so compare centred weights
    np.testing.assert_allclose((W - W.mean(0)).numpy(), ref.coef_ - ref.coef_.mean(0), atol=1e-3)


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
    # the same convex optimum up to L-BFGS's float32 tolerance
    assert torch.allclose(probe(q).softmax(1), a.softmax(1), atol=1e-3)


def test_probe_errors():
    with pytest.raises(ValueError, match="weight_decay"):
        LinearProbe(nn.Identity(), weight_decay=-1)
    with pytest.raises(RuntimeError, match="process_support_set"):
        LinearProbe(nn.Identity())(torch.zeros(2, 3))
