"""SSL losses against naive NumPy oracles of the papers' equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fsl_utils.ssl import nt_xent


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
