"""More ways to learn from unlabeled inputs: entropy minimisation, pseudo-labels, sharpening,
mixup and virtual adversarial training (lecture 3's two-moons section)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    """Entropy minimisation (Grandvalet & Bengio 2005): ``(1/B) Σ_b −Σ_c p_bc log p_bc`` with
    ``p_b = softmax(logits_b)``; gradients flow into the logits (the model is pushed to be confident).

    Args:
        logits: shape (B, C).

    Returns:
        Scalar mean entropy in nats, in [0, log C].
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (B, n_classes), got {tuple(logits.shape)}")
    log_p = logits.log_softmax(dim=1)
    return -(log_p.exp() * log_p).sum(dim=1).mean()


def pseudo_label_loss(logits: torch.Tensor, threshold: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-labelling (Lee 2013): the model's own argmax is the target of a cross-entropy on the
    same logits, ``(1/B) Σ_b 1[max p_b ≥ τ] · H(argmax p_b, p_b)``; the target is a constant.

    Args:
        logits: shape (B, C).
        threshold: τ in [0, 1]; 0 keeps every pseudo-label (Lee's original form).

    Returns:
        ``(loss, mask)``: the scalar loss and the float mask of shape (B,) of the pseudo-labels used.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (B, n_classes), got {tuple(logits.shape)}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    confidence, targets = logits.detach().softmax(dim=1).max(dim=1)
    mask = (confidence >= threshold).float()
    return (F.cross_entropy(logits, targets, reduction="none") * mask).mean(), mask


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """MixMatch's sharpening (Berthelot et al. 2019, eq. 7): ``p_c^(1/T) / Σ_k p_k^(1/T)``.

    Args:
        probs: class distributions, shape (B, C), rows summing to 1.
        temperature: T > 0; T < 1 lowers the entropy, T → 0 gives the one-hot argmax.

    Returns:
        Sharpened distributions of shape (B, C).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    # in log space, so that small T does not underflow
    return F.softmax(probs.clamp_min(1e-30).log() / temperature, dim=1)


def sample_beta(alpha: float, generator: torch.Generator | None = None) -> float:
    """One draw of Beta(α, α) from ``generator`` (Jöhnk's method: U₁^(1/α) / (U₁^(1/α) + U₂^(1/α))
    conditioned on the sum being at most 1)."""
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    while True:
        u = torch.rand(2, generator=generator, dtype=torch.float64) ** (1 / alpha)
        if 0 < u.sum() <= 1:
            return float(u[0] / u.sum())


def mixup(
    x: torch.Tensor, targets: torch.Tensor, alpha: float = 0.75, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """MixMatch's MixUp (Berthelot et al. 2019, eqs. 8-11): each input is mixed with a shuffled
    partner, ``x' = λ' x + (1 − λ') x_perm``, its target likewise, with ``λ ~ Beta(α, α)`` (one
    draw per call) and ``λ' = max(λ, 1 − λ)`` so that every mixed input stays closer to its own.

    Args:
        x: inputs, shape (N, ...).
        targets: soft targets (or one-hot labels), shape (N, C).
        alpha: the Beta distribution's parameter (MixMatch: 0.75).
        generator: for λ and the permutation.

    Returns:
        ``(mixed_x, mixed_targets, lam)`` with the shapes of ``x`` and ``targets`` and λ'.
    """
    if len(x) != len(targets):
        raise ValueError(f"x and targets must have the same length, got {len(x)} and {len(targets)}")
    lam = sample_beta(alpha, generator)
    lam = max(lam, 1 - lam)
    perm = torch.randperm(len(x), generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm], lam


def _unit(d: torch.Tensor) -> torch.Tensor:
    """Each example of d scaled to unit L2 norm (over all but the batch dimension)."""
    return d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (d.ndim - 1)))


def vat_loss(
    model: nn.Module, x: torch.Tensor, eps: float, xi: float = 1e-3, n_power: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Virtual adversarial training (Miyato et al. 2018, eqs. 5-8 and 12-14): the KL divergence
    ``KL(p(y|x) ‖ p(y|x + r_adv))`` for the perturbation ``r_adv`` of norm ``eps`` that changes the
    prediction most, found by ``n_power`` power iterations from a random direction d:
    ``d ← ∇_r KL(p(y|x) ‖ p(y|x + ξ d))|_{r = ξd}``, normalised; ``r_adv = eps · d / ‖d‖``.
    The clean prediction p(y|x) is a constant (no gradient); gradients reach the model through
    the perturbed pass.

    Args:
        model: maps x to logits of shape (B, C).
        x: inputs, shape (B, ...); labeled or not.
        eps: norm of the adversarial perturbation (per example).
        xi: the small step ξ of the power iteration, relative to the inputs' scale (the paper: 1e-6;
            in float32 the KL at so small a step is mostly rounding, so the default is 1e-3).
        n_power: power iterations (the paper: 1 is enough).
        generator: for the random start d.

    Returns:
        Scalar mean KL divergence (to be weighted by α).
    """
    if eps <= 0 or xi <= 0 or n_power < 1:
        raise ValueError(f"need eps > 0, xi > 0 and n_power >= 1, got {eps}, {xi}, {n_power}")
    with torch.no_grad():
        log_p = model(x).log_softmax(dim=1)
    d = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    for _ in range(n_power):
        d = (xi * _unit(d)).requires_grad_()
        kl = F.kl_div(model(x + d).log_softmax(dim=1), log_p, log_target=True, reduction="batchmean")
        d = torch.autograd.grad(kl, d)[0]
    r_adv = eps * _unit(d.detach())
    return F.kl_div(model(x + r_adv).log_softmax(dim=1), log_p, log_target=True, reduction="batchmean")
