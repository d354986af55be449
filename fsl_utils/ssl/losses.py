"""Self-supervised and semi-supervised losses, written to match the papers' equations."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy (Chen et al. 2020, eq. 1).

    For the 2N views, with sim(u, v) = u·v / (‖u‖‖v‖) and τ the temperature,
    ``l(i, j) = -log exp(sim(z_i, z_j)/τ) / Σ_{k≠i} exp(sim(z_i, z_k)/τ)``; the loss is the
    mean of l(2k-1, 2k) and l(2k, 2k-1) over the N positive pairs.

    Args:
        z1: projections of the first views, shape (N, d).
        z2: projections of the second views, shape (N, d); row n pairs with ``z1[n]``.
        temperature: τ > 0.

    Returns:
        Scalar loss.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both have shape (N, d), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))  # k != i
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def softmax_mse(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Squared distance between two class distributions, ``(1/C)‖softmax(a) − softmax(b)‖²``
    averaged over the batch (the consistency cost of Laine & Aila 2017 and Tarvainen & Valpola 2017).

    Gradients flow into both arguments; :func:`pi_model_loss` and :func:`mean_teacher_loss`
    decide which side is a constant.

    Args:
        logits: shape (B, C).
        target_logits: shape (B, C).

    Returns:
        Scalar loss.
    """
    _check_logits(logits, target_logits)
    return (logits.softmax(dim=1) - target_logits.softmax(dim=1)).pow(2).mean()


def pi_model_loss(logits_1: torch.Tensor, logits_2: torch.Tensor) -> torch.Tensor:
    """Π-model consistency (Laine & Aila 2017): ``(1/C)‖f(x̃₁) − f(x̃₂)‖²`` for two stochastic
    passes (different augmentation and dropout) of the same unlabeled images; gradients go
    through both passes.

    Args:
        logits_1: logits of the first pass, shape (B, C).
        logits_2: logits of the second pass, shape (B, C).

    Returns:
        Scalar loss (to be multiplied by the ramped-up weight w(t)).
    """
    return softmax_mse(logits_1, logits_2)


def mean_teacher_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean Teacher consistency (Tarvainen & Valpola 2017): ``(1/C)‖f_θ(x̃) − f_θ′(x̃′)‖²``,
    where the teacher θ′ is an EMA of the student; no gradient reaches the teacher.

    Args:
        student_logits: shape (B, C).
        teacher_logits: shape (B, C); detached here.

    Returns:
        Scalar loss.
    """
    return softmax_mse(student_logits, teacher_logits.detach())


def fixmatch_loss(
    logits_weak: torch.Tensor, logits_strong: torch.Tensor, threshold: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch's unlabeled loss (Sohn et al. 2020, eq. 4).

    With ``q_b = softmax(f(weak(u_b)))`` (a constant) and ``q̂_b = argmax q_b``:
    ``ℓ_u = (1/μB) Σ_b 1[max q_b ≥ τ] · H(q̂_b, softmax(f(strong(u_b))))``. The mean runs over
    *all* μB unlabeled images, so the loss shrinks when few pass the threshold.

    Args:
        logits_weak: logits on weakly augmented images, shape (μB, C).
        logits_strong: logits on strongly augmented versions of the same images, shape (μB, C).
        threshold: confidence τ in [0, 1] above which a pseudo-label is used.

    Returns:
        ``(loss, mask)``: the scalar loss and the float mask of shape (μB,) marking the
        pseudo-labels used (its mean is the fraction of the batch above τ).
    """
    _check_logits(logits_strong, logits_weak)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    probs = logits_weak.detach().softmax(dim=1)
    confidence, pseudo_labels = probs.max(dim=1)
    mask = (confidence >= threshold).float()
    loss = (F.cross_entropy(logits_strong, pseudo_labels, reduction="none") * mask).mean()
    return loss, mask


def byol_loss(prediction: torch.Tensor, target_projection: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss (Grill et al. 2020, eq. 2): ``‖q̄ − z̄′‖² = 2 − 2·cos(q, z′)``
    between the online prediction q and the target projection z′ (a constant), per pair,
    averaged over the batch. Symmetrise by adding the loss with the views swapped.

    Args:
        prediction: online network's predictions q_θ(z_θ), shape (B, d).
        target_projection: target network's projections z′_ξ, shape (B, d); detached here.

    Returns:
        Scalar loss in [0, 4].
    """
    if prediction.shape != target_projection.shape or prediction.ndim != 2:
        raise ValueError(
            f"prediction and target_projection must both have shape (B, d), "
            f"got {tuple(prediction.shape)} and {tuple(target_projection.shape)}"
        )
    q = F.normalize(prediction, dim=1)
    z = F.normalize(target_projection.detach(), dim=1)
    return (2 - 2 * (q * z).sum(dim=1)).mean()


def sigmoid_rampup(step: int, rampup_steps: int) -> float:
    """The consistency weight's ramp-up ``exp(−5(1 − t)²)``, t = min(step / rampup_steps, 1)
    (Laine & Aila 2017; Tarvainen & Valpola 2017): 0.0067 at step 0, 1 from ``rampup_steps`` on.

    Args:
        step: current training step (≥ 0).
        rampup_steps: length of the ramp; 0 disables it (always 1).

    Returns:
        A weight in (0, 1].
    """
    if step < 0 or rampup_steps < 0:
        raise ValueError(f"step and rampup_steps must be non-negative, got {step} and {rampup_steps}")
    if rampup_steps == 0:
        return 1.0
    t = min(step / rampup_steps, 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def _check_logits(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"logits must both have shape (B, n_classes), got {tuple(a.shape)} and {tuple(b.shape)}")
