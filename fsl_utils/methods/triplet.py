"""The triplet loss of FaceNet (Schroff, Kalenichenko & Philbin, CVPR 2015), with online mining.

An embedding :math:`f(x)` on the unit sphere is trained so that an *anchor* :math:`a` is
closer to a *positive* :math:`p` (same class) than to a *negative* :math:`n` (another class)
by at least a margin :math:`\\alpha`:

.. math::
    \\mathcal{L} = \\big[\\, \\lVert f(a) - f(p) \\rVert^2 - \\lVert f(a) - f(n) \\rVert^2 + \\alpha \\,\\big]_+ .

Most triplets of a batch already satisfy the margin and cost nothing, so *which* triplets
are used matters (FaceNet §3.2). Three choices, all mined online inside a batch of
labelled embeddings:

* ``"all"``: the mean over every valid (a, p, n) of the batch;
* ``"semi_hard"`` (FaceNet): every anchor-positive pair, each with the closest negative that
  is still farther than the positive, :math:`d(a, p) < d(a, n)` (if none is, the farthest
  negative); the same rule as TensorFlow Addons' ``TripletSemiHardLoss``;
* ``"hard"`` (batch-hard, Hermans, Beyer & Leibe 2017): per anchor, its farthest positive
  and its closest negative.

Distances are squared Euclidean as in FaceNet (``squared=False``: Euclidean, as in Hermans
et al.). Normalise the embeddings first (``F.normalize``): on the unit sphere
:math:`\\lVert u - v \\rVert^2 = 2 - 2 \\cos(u, v) \\le 4`, so the margin has a fixed scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MININGS = ("all", "semi_hard", "hard")


class L2Normalize(nn.Module):
    """Puts embeddings on the unit sphere, as FaceNet does: (B, d) -> (B, d), rows of norm 1."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(z.flatten(1), dim=1)


def pairwise_distances(z: torch.Tensor, squared: bool = True) -> torch.Tensor:
    """All pairwise (squared) Euclidean distances of a batch.

    Args:
        z: embeddings of shape (B, d).
        squared: return ``||z_i - z_j||^2`` (else its square root).

    Returns:
        Shape (B, B), non-negative, zero diagonal.
    """
    gram = z @ z.T
    norms = gram.diagonal()
    d = (norms[:, None] - 2 * gram + norms[None, :]).clamp_min(0)
    d = d * (1 - torch.eye(len(z), dtype=z.dtype, device=z.device))  # exact zeros on the diagonal
    # sqrt has an infinite gradient at 0: add a tiny epsilon only where the distance is zero
    return d if squared else (d + (d == 0).to(d.dtype) * 1e-16).sqrt() * (d > 0).to(d.dtype)


def triplet_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2, mining: str = "semi_hard", squared: bool = True,
) -> torch.Tensor:
    """Triplet loss of a labelled batch with online triplet mining.

    Args:
        embeddings: shape (B, d), usually L2-normalised.
        labels: class of every embedding, shape (B,); the batch needs at least one class
            with two examples and at least two classes.
        margin: the margin alpha (FaceNet: 0.2 on unit-norm embeddings, squared distances).
        mining: ``"all"``, ``"semi_hard"`` or ``"hard"`` (see the module docstring).
        squared: squared Euclidean distances (FaceNet) or Euclidean ones.

    Returns:
        A scalar: the mean of ``[d(a, p) - d(a, n) + margin]_+`` over the mined triplets.

    Raises:
        ValueError: unknown ``mining``, or a batch without any positive or negative pair.
    """
    if mining not in MININGS:
        raise ValueError(f"unknown mining {mining!r}; use one of {MININGS}")
    if embeddings.dim() != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(f"embeddings must be (B, d) and labels (B,); got {tuple(embeddings.shape)} and {tuple(labels.shape)}")
    d = pairwise_distances(embeddings, squared)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    negative = ~same
    if not positive.any() or not negative.any():
        raise ValueError("the batch needs two examples of one class and two different classes; sample >= 2 per class")

    if mining == "hard":
        anchors = positive.any(1) & negative.any(1)
        hardest_positive = d.masked_fill(~positive, float("-inf")).amax(1)
        hardest_negative = d.masked_fill(~negative, float("inf")).amin(1)
        return (hardest_positive - hardest_negative + margin)[anchors].clamp_min(0).mean()

    # (a, p, n) terms d(a, p) - d(a, n) + margin, shape (B, B, B): anchor, positive, negative
    terms = d[:, :, None] - d[:, None, :] + margin
    if mining == "all":
        valid = positive[:, :, None] & negative[:, None, :]
        return terms[valid].clamp_min(0).mean()

    # semi-hard: for each (a, p), the closest negative farther than p; if none, the farthest negative
    farther = negative[:, None, :] & (d[:, None, :] > d[:, :, None])                  # (a, p, n)
    closest_farther = d[:, None, :].expand_as(farther).masked_fill(~farther, float("inf")).amin(2)
    farthest = d.masked_fill(~negative, float("-inf")).amax(1)[:, None].expand_as(closest_farther)
    chosen = torch.where(farther.any(2), closest_farther, farthest)                   # d(a, n*), (a, p)
    valid = positive & negative.any(1, keepdim=True)
    return (d - chosen + margin)[valid].clamp_min(0).mean()


def triplet_fractions(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2, squared: bool = True) -> dict[str, float]:
    """Share of the batch's valid triplets that are hard, semi-hard and easy (FaceNet's terms).

    hard: ``d(a, n) < d(a, p)``; semi-hard: ``d(a, p) <= d(a, n) < d(a, p) + margin``;
    easy: ``d(a, n) >= d(a, p) + margin`` (zero loss).

    Args:
        embeddings: shape (B, d). labels: shape (B,).

    Returns:
        ``{"hard": ..., "semi-hard": ..., "easy": ...}``, fractions that sum to 1.
    """
    d = pairwise_distances(embeddings.detach(), squared)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    valid = positive[:, :, None] & ~same[:, None, :]
    gap = (d[:, None, :] - d[:, :, None])[valid]          # d(a, n) - d(a, p)
    n = max(gap.numel(), 1)
    hard = (gap < 0).sum().item() / n
    easy = (gap >= margin).sum().item() / n
    return {"hard": hard, "semi-hard": 1 - hard - easy, "easy": easy}
