"""SSL losses against naive NumPy oracles of the papers' equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fsl_utils.ssl import byol_loss, fixmatch_loss, mean_teacher_loss, nt_xent, pi_model_loss, sigmoid_rampup, softmax_mse


def nt_xent_oracle(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
    """The slide's l(i, j) with explicit loops, averaged over all 2N ordered positive pairs."""
    z = np.concatenate([z1, z2])
    n2 = len(z)
    n = n2 // 2

    def sim(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    def l(i, j):
        den = sum(np.exp(sim(z[i], z[k]) / tau) for k in range(n2) if k != i)
        return -np.log(np.exp(sim(z[i], z[j]) / tau) / den)

    return sum(l(k, k + n) + l(k + n, k) for k in range(n)) / n2


@pytest.mark.parametrize("n,d,tau", [(2, 3, 0.5), (8, 16, 0.1), (5, 4, 1.0)])
def test_nt_xent_matches_oracle(n, d, tau):
    g = torch.Generator().manual_seed(n * 100 + d)
    z1, z2 = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    assert nt_xent(z1, z2, tau).item() == pytest.approx(nt_xent_oracle(z1.numpy(), z2.numpy(), tau), rel=1e-9)


def test_nt_xent_is_low_for_matching_views_and_scale_invariant():
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    assert nt_xent(z, z * 3.0, 0.1) < nt_xent(z, torch.randn(16, 8), 0.1)


def test_nt_xent_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        nt_xent(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.zeros(4, 3), torch.zeros(4, 3), 0.0)


# --- consistency, FixMatch and BYOL losses ---------------------------------------------------


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max())
    return e / e.sum()


def consistency_oracle(a: np.ndarray, b: np.ndarray) -> float:
    """Laine & Aila's (1/C)‖z − z̃‖² per image, averaged over the batch, with loops."""
    n, c = a.shape
    total = 0.0
    for i in range(n):
        pa, pb = _softmax(a[i]), _softmax(b[i])
        total += sum((pa[k] - pb[k]) ** 2 for k in range(c)) / c
    return total / n


def fixmatch_oracle(weak: np.ndarray, strong: np.ndarray, tau: float) -> tuple[float, list[float]]:
    """Sohn et al. eq. 4 with loops: (1/μB) Σ_b 1[max q_b ≥ τ] H(argmax q_b, p_strong)."""
    total, mask = 0.0, []
    for w, s in zip(weak, strong):
        q = _softmax(w)
        used = float(q.max() >= tau)
        mask.append(used)
        if used:
            total += -np.log(_softmax(s)[int(np.argmax(q))])
    return total / len(weak), mask


def byol_oracle(p: np.ndarray, z: np.ndarray) -> float:
    """‖p/‖p‖ − z/‖z‖‖² per pair, averaged."""
    return float(np.mean([np.sum((pi / np.linalg.norm(pi) - zi / np.linalg.norm(zi)) ** 2) for pi, zi in zip(p, z)]))


@pytest.mark.parametrize("n,c", [(1, 2), (7, 10), (16, 3)])
def test_pi_and_mean_teacher_losses_match_oracle(n, c):
    g = torch.Generator().manual_seed(n + c)
    a, b = torch.randn(n, c, generator=g, dtype=torch.float64) * 3, torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    expected = consistency_oracle(a.numpy(), b.numpy())
    assert pi_model_loss(a, b).item() == pytest.approx(expected, rel=1e-10)
    assert mean_teacher_loss(a, b).item() == pytest.approx(expected, rel=1e-10)
    assert softmax_mse(a, a).item() == 0.0


def test_pi_model_differentiates_both_passes_mean_teacher_only_the_student():
    a = torch.randn(4, 5, requires_grad=True)
    b = torch.randn(4, 5, requires_grad=True)
    pi_model_loss(a, b).backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    student = torch.randn(4, 5, requires_grad=True)
    teacher = torch.randn(4, 5, requires_grad=True)
    mean_teacher_loss(student, teacher).backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


@pytest.mark.parametrize("tau", [0.0, 0.5, 0.8, 1.0])
def test_fixmatch_loss_matches_oracle(tau):
    g = torch.Generator().manual_seed(int(tau * 10))
    weak = torch.randn(32, 4, generator=g, dtype=torch.float64) * 2.5
    strong = torch.randn(32, 4, generator=g, dtype=torch.float64)
    loss, mask = fixmatch_loss(weak, strong, tau)
    expected, expected_mask = fixmatch_oracle(weak.numpy(), strong.numpy(), tau)
    assert loss.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert mask.tolist() == expected_mask
    if tau == 0.5:  # the test needs both used and unused pseudo-labels
        assert 0 < mask.sum() < len(mask)


def test_fixmatch_gradient_reaches_only_the_strong_branch():
    weak = torch.tensor([[5.0, 0.0], [0.1, 0.0]], requires_grad=True)
    strong = torch.zeros(2, 2, requires_grad=True)
    loss, mask = fixmatch_loss(weak, strong, 0.95)
    loss.backward()
    assert mask.tolist() == [1.0, 0.0]
    assert weak.grad is None
    # only the confident image (row 0) pulls its strong logits towards pseudo-label 0
    assert strong.grad[0, 0] < 0 < strong.grad[0, 1] and torch.all(strong.grad[1] == 0)


@pytest.mark.parametrize("n,d", [(1, 3), (9, 16)])
def test_byol_loss_matches_oracle_and_two_minus_two_cos(n, d):
    g = torch.Generator().manual_seed(d)
    p, z = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    assert byol_loss(p, z).item() == pytest.approx(byol_oracle(p.numpy(), z.numpy()), rel=1e-10)
    cos = torch.nn.functional.cosine_similarity(p, z).mean().item()
    assert byol_loss(p, z).item() == pytest.approx(2 - 2 * cos, rel=1e-10)
    assert byol_loss(p, 5 * p).item() == pytest.approx(0.0, abs=1e-12)
    assert byol_loss(p, -p).item() == pytest.approx(4.0)


def test_byol_loss_stops_the_gradient_at_the_target():
    p = torch.randn(4, 8, requires_grad=True)
    z = torch.randn(4, 8, requires_grad=True)
    byol_loss(p, z).backward()
    assert p.grad.abs().sum() > 0 and z.grad is None


def test_sigmoid_rampup_follows_exp_minus_five_one_minus_t_squared():
    assert sigmoid_rampup(0, 100) == pytest.approx(np.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(np.exp(-5 * 0.25))
    assert sigmoid_rampup(100, 100) == 1.0 and sigmoid_rampup(1000, 100) == 1.0
    assert sigmoid_rampup(3, 0) == 1.0
    values = [sigmoid_rampup(s, 40) for s in range(41)]
    assert all(a < b for a, b in zip(values, values[1:]))


def test_ssl_losses_reject_bad_input():
    with pytest.raises(ValueError, match="shape"):
        pi_model_loss(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="shape"):
        mean_teacher_loss(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="threshold"):
        fixmatch_loss(torch.zeros(4, 3), torch.zeros(4, 3), 1.5)
    with pytest.raises(ValueError, match="shape"):
        fixmatch_loss(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="shape"):
        byol_loss(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="non-negative"):
        sigmoid_rampup(-1, 10)
