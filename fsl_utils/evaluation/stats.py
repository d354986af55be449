"""Summary statistics of evaluations: classification accuracy and 95% confidence intervals."""

from __future__ import annotations

import math
from typing import Any

import torch


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Percentage of rows whose arg-max matches the label.

    Args:
        logits: shape (N, n_classes).
        labels: int64, shape (N,).

    Returns:
        The accuracy in percent (0..100).
    """
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits must have shape (N, n_classes) matching labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    return 100.0 * (logits.argmax(dim=1) == labels.to(logits.device)).float().mean().item()


def mean_ci95(values: Any) -> tuple[float, float]:
    """Mean and half-width of the normal-approximation 95% confidence interval.

    Args:
        values: a sequence or 1-D tensor/array of per-episode (or per-seed) values.

    Returns:
        ``(mean, 1.96 * std / sqrt(n))``; the half-width is 0 for a single value.
    """
    xs = [float(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]
    if not xs:
        raise ValueError("mean_ci95 needs at least one value")
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        return mean, 0.0
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)

