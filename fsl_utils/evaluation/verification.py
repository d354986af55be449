"""Verification: is this pair the same class or not? (face verification, Omniglot pairs)

A verifier scores a pair — a siamese network's logit, or the negative distance between two
embeddings — and answers "same" when the score reaches a threshold. The threshold is a
choice the network does not make: as in FaceNet's LFW protocol (a distance threshold fitted
on nine folds, accuracy on the tenth), it is chosen on *validation* pairs and then applied,
unchanged, to the test pairs. The ROC curve shows every threshold at once.
"""

from __future__ import annotations

import torch


def roc_curve(scores: torch.Tensor, same: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Receiver operating characteristic of pair scores (higher score = more likely "same").

    Args:
        scores: shape (n,). same: 1 for same-class pairs, 0 otherwise, shape (n,); both
            answers must occur.

    Returns:
        ``(fpr, tpr, thresholds)``, each of shape (m,): answering "same" for
        ``scores >= thresholds[i]`` accepts a fraction ``fpr[i]`` of the different pairs and
        ``tpr[i]`` of the same pairs. Starts at (0, 0) with threshold +inf, ends at (1, 1).
    """
    same = same.bool().flatten()
    scores = scores.detach().flatten().double()
    n_same, n_diff = int(same.sum()), int((~same).sum())
    if n_same == 0 or n_diff == 0:
        raise ValueError("the pairs need both same and different pairs")
    order = scores.argsort(descending=True)
    s, y = scores[order], same[order]
    last_of_tie = torch.ones(len(s), dtype=torch.bool)
    last_of_tie[:-1] = s[1:] != s[:-1]  # one point per distinct threshold
    tp = y.double().cumsum(0)[last_of_tie]
    fp = (~y).double().cumsum(0)[last_of_tie]
    zero = torch.zeros(1, dtype=torch.float64)
    fpr = torch.cat([zero, fp / n_diff])
    tpr = torch.cat([zero, tp / n_same])
    thresholds = torch.cat([torch.tensor([float("inf")], dtype=torch.float64), s[last_of_tie]])
    return fpr, tpr, thresholds


def auc(fpr: torch.Tensor, tpr: torch.Tensor) -> float:
    """Area under a ROC curve (trapezoids), in [0, 1].

    Args:
        fpr: false-positive rates of shape (T,), increasing (as :func:`roc_curve` returns them).
        tpr: true-positive rates of shape (T,).

    Returns:
        The area under the curve.
    """
    return float(torch.trapezoid(tpr, fpr))


def accuracy_at(scores: torch.Tensor, same: torch.Tensor, threshold: float) -> float:
    """Verification accuracy (%) of answering "same" for ``scores >= threshold``.

    Args:
        scores: shape (n,). same: shape (n,), 1 for same-class pairs.
        threshold: the decision threshold.
    """
    return 100 * ((scores.detach().flatten() >= threshold) == same.bool().flatten()).float().mean().item()


def best_threshold(scores: torch.Tensor, same: torch.Tensor) -> tuple[float, float]:
    """The threshold that maximises the accuracy on these (validation) pairs.

    Args:
        scores: shape (n,). same: shape (n,), 1 for same-class pairs.

    Returns:
        ``(threshold, accuracy in %)``. The threshold is midway between the chosen score and
        the next lower one, so that nearby test scores are not decided by a tie.
    """
    fpr, tpr, thresholds = roc_curve(scores, same)
    same = same.bool().flatten()
    p = same.double().mean()
    accuracy = p * tpr + (1 - p) * (1 - fpr)          # per threshold of the ROC curve
    i = int(accuracy[1:].argmax()) + 1                  # never the +inf threshold
    below = thresholds[i + 1] if i + 1 < len(thresholds) else thresholds[i] - 1.0
    return float((thresholds[i] + below) / 2), 100 * float(accuracy[i])
