"""Entropy minimisation, pseudo-labels, sharpening, mixup and VAT against naive NumPy oracles of
the papers' equations (and invariants where no closed form exists)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fsl_utils.ssl import entropy_loss, mixup, pseudo_label_loss, sample_beta, sharpen, vat_loss


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_entropy_loss_matches_oracle():
    logits = torch.randn(7, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = _softmax(logits.numpy())
    oracle = np.mean([-sum(p[b, c] * np.log(p[b, c]) for c in range(5)) for b in range(7)])
    assert entropy_loss(logits).item() == pytest.approx(oracle, rel=1e-9)
    assert entropy_loss(torch.zeros(3, 4)).item() == pytest.approx(np.log(4), rel=1e-6)  # uniform: log C


def test_pseudo_label_loss_matches_oracle_and_masks():
    logits = 3 * torch.randn(12, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = _softmax(logits.numpy())
    for tau in (0.0, 0.8):
        keep = p.max(axis=1) >= tau
        oracle = np.mean([-np.log(p[b, p[b].argmax()]) * keep[b] for b in range(12)])
        loss, mask = pseudo_label_loss(logits, tau)
        assert loss.item() == pytest.approx(oracle, rel=1e-9) and mask.tolist() == keep.astype(float).tolist()
    with pytest.raises(ValueError):
        pseudo_label_loss(logits, 1.5)


def test_sharpen_matches_oracle_and_limits():
    p = torch.softmax(torch.randn(6, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64), dim=1)
    for t in (0.5, 1.0, 2.0):
        q = p.numpy() ** (1 / t)
        assert np.allclose(sharpen(p, t).numpy(), q / q.sum(axis=1, keepdims=True))
    assert torch.equal(sharpen(p, 1e-3).argmax(1), p.argmax(1)) and torch.allclose(sharpen(p, 1e-3).max(1).values, torch.ones(6, dtype=torch.float64))
    with pytest.raises(ValueError):
        sharpen(p, 0.0)


def test_sample_beta_is_reproducible_and_has_the_beta_mean_and_variance():
    g = torch.Generator().manual_seed(3)
    draws = np.array([sample_beta(0.75, g) for _ in range(4000)])
    assert sample_beta(0.75, torch.Generator().manual_seed(4)) == sample_beta(0.75, torch.Generator().manual_seed(4))
    a = 0.75
    assert abs(draws.mean() - 0.5) < 0.02 and abs(draws.var() - a * a / ((2 * a) ** 2 * (2 * a + 1))) < 0.01
    assert ((0 <= draws) & (draws <= 1)).all()


def test_mixup_mixes_inputs_and_targets_with_the_same_partner():
    x = torch.arange(10, dtype=torch.float64)[:, None] * torch.ones(10, 3, dtype=torch.float64)
    y = torch.eye(10, dtype=torch.float64)
    mx, my, lam = mixup(x, y, alpha=0.75, generator=torch.Generator().manual_seed(5))
    assert 0.5 <= lam <= 1
    partner = my.clone()
    partner[torch.arange(10), torch.arange(10)] -= lam  # what is left is (1 - λ) on the partner's class
    j = partner.argmax(1)
    same = j == torch.arange(10)  # paired with itself: x unchanged
    assert torch.allclose(mx[~same], lam * x[~same] + (1 - lam) * x[j[~same]]) and torch.allclose(mx[same], x[same])
    assert torch.allclose(my.sum(1), torch.ones(10, dtype=torch.float64))


def test_vat_finds_the_most_sensitive_direction_of_a_linear_model():
    # logits = W x with W's rows differing only along e_0: the prediction changes only along e_0, so
    # the adversarial direction is ±e_0, and its KL exceeds that of any random direction of the same norm.
    torch.manual_seed(0)
    model = nn.Linear(4, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, 1.0, 1.0, 1.0], [-2.0, 1.0, 1.0, 1.0]], dtype=torch.float64))
    x = torch.zeros(5, 4, dtype=torch.float64)
    g = torch.Generator().manual_seed(6)
    adv = vat_loss(model, x, eps=0.5, n_power=1, generator=g).item()
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    oracle = np.log(0.5) - 0.5 * (np.log(sig(2.0)) + np.log(sig(-2.0)))  # KL(uniform || softmax([1, -1])) at r = ±0.5 e_0
    assert adv == pytest.approx(oracle, rel=1e-4)
    model.zero_grad()
    vat_loss(model, x, eps=0.5, generator=g).backward()
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0  # gradients reach the model


def test_vat_rejects_bad_arguments():
    with pytest.raises(ValueError):
        vat_loss(nn.Linear(2, 2), torch.zeros(1, 2), eps=0.0)
