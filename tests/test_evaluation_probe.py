"""The linear probe (fsl_utils.evaluation.probe.fit_linear_probe): the optimum of the objective it
documents, checked by its gradient; the folded standardisation and the two-class form against
scikit-learn's own estimators; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fsl_utils.evaluation import fit_linear_probe
from seeds import rng


def _overlapping(n_per_class: int, n_classes: int, d: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes that overlap (a finite, unique optimum), unequal in size when asked."""
    g = rng(seed)
    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    x = torch.randn(len(y), d, generator=g, dtype=torch.float64) + 1.2 * F.one_hot(y, d).double()
    return 3 * x + 1, y


def _objective_gradient(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor, c: float | None,
                        sample_weight: torch.Tensor) -> float:
    """Largest gradient entry of (C sum_i s_i CE_i + ||W||^2 / 2) / (C n) at (weight, bias)."""
    w, b = weight.clone().requires_grad_(True), bias.clone().requires_grad_(True)
    loss = (sample_weight * F.cross_entropy(x @ w.T + b, y, reduction="none")).sum()
    if c is not None:
        loss = loss + 0.5 * w.pow(2).sum() / c
    loss.backward()
    return max(w.grad.abs().max().item(), b.grad.abs().max().item()) / len(x)


@pytest.mark.parametrize("c", [0.05, 1.0, None])
def test_three_classes_reach_the_optimum_of_the_documented_objective(c):
    x, y = _overlapping(20, 3)
    probe = fit_linear_probe(x, y, c=c)
    assert probe.weight.shape == (3, 6) and probe.bias.shape == (3,) and probe.weight.dtype == torch.float64
    assert _objective_gradient(probe.weight, probe.bias, x, y, c, torch.ones(len(y), dtype=torch.float64)) < 1e-3
    assert (probe.predict(x) == y).double().mean() > 0.6


def test_two_classes_with_balanced_weights_are_the_log_odds_of_one_vector():
    x, y = _overlapping(30, 2)
    x, y = x[:40], y[:40]  # 30 of class 0, 10 of class 1
    probe = fit_linear_probe(x.float(), y, c=2.0, class_weight="balanced")
    # the rows are -w/2 and w/2: the penalty on w is ||W||^2, so the gradient is checked on w itself
    w, b = probe.weight[1] - probe.weight[0], probe.bias[1] - probe.bias[0]
    counts = torch.bincount(y).double()
    s = (len(y) / (2 * counts))[y]
    wv, bv = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    margin = (2 * y - 1).double() * (x @ wv + bv)
    (2.0 * (s * F.softplus(-margin)).sum() + 0.5 * wv.pow(2).sum()).backward()
    assert max(wv.grad.abs().max().item(), bv.grad.abs().item()) / (2.0 * len(y)) < 1e-3
    oracle = LogisticRegression(C=2.0, class_weight="balanced", max_iter=1000).fit(x.float().numpy(), y.numpy())
    np.testing.assert_allclose(probe.decision(x).numpy(), oracle.decision_function(x.float().numpy()), rtol=1e-5)  # float32 there
    np.testing.assert_allclose(probe.logits(x).softmax(1).numpy(), oracle.predict_proba(x.float().numpy()), atol=1e-6)


def test_standardisation_is_folded_into_the_weights():
    x, y = _overlapping(25, 4, seed=1)
    x[:, 0] = 7.0  # a constant feature: StandardScaler keeps its scale at 1
    probe = fit_linear_probe(x, y, c=0.5, standardize=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000)).fit(x.numpy(), y.numpy())
    test = _overlapping(10, 4, seed=2)[0]
    np.testing.assert_allclose(probe.logits(test).numpy(), pipeline.decision_function(test.numpy()), atol=1e-9)
    assert torch.equal(probe.predict(test), torch.from_numpy(pipeline.predict(test.numpy())))


def test_bad_input_is_refused_with_the_reason():
    x, y = _overlapping(5, 3)
    with pytest.raises(ValueError, match="every class present"):
        fit_linear_probe(x, y + 1)
    with pytest.raises(ValueError, match="at least two classes"):
        fit_linear_probe(x[:5], y[:5])
    with pytest.raises(ValueError, match="one label per row"):
        fit_linear_probe(x, y[:-1])
    with pytest.raises(ValueError, match="c must be > 0"):
        fit_linear_probe(x, y, c=0.0)
    with pytest.raises(ValueError, match="two classes"):
        fit_linear_probe(x, y).decision(x)
