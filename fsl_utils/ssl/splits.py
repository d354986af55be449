"""Labeled / unlabeled / held-out splits of a labelled dataset, and endless minibatches."""

from __future__ import annotations

from typing import Iterator, NamedTuple

import torch


class SemiSupervisedSplit(NamedTuple):
    """Disjoint index sets into one dataset.

    Attributes:
        labeled: indices whose labels training may use, shape (n_labeled,), class-balanced.
        unlabeled: indices used without their labels, shape (n_unlabeled,).
        holdout: indices never trained on (the evaluation set), shape (n_holdout,).
    """

    labeled: torch.Tensor
    unlabeled: torch.Tensor
    holdout: torch.Tensor


def semi_supervised_split(
    labels: torch.Tensor, n_labeled: int, n_holdout: int = 0, generator: torch.Generator | None = None
) -> SemiSupervisedSplit:
    """Split a dataset the way the SSL papers do: ``n_labeled`` images with an equal number
    per class keep their labels, ``n_holdout`` images (also class-balanced) are set aside for
    evaluation, and all the rest become the unlabeled set.

    Args:
        labels: int labels of shape (n,), values 0..n_classes-1.
        n_labeled: total labeled images; must be a multiple of the number of classes.
        n_holdout: total held-out images; a multiple of the number of classes (or 0).
        generator: the random source (same generator state -> same split).

    Returns:
        :class:`SemiSupervisedSplit` of sorted index tensors (labeled, unlabeled, holdout).

    Raises:
        ValueError: if a count is not a multiple of the number of classes or a class has too
            few images.
    """
    if labels.ndim != 1 or labels.numel() == 0:
        raise ValueError(f"labels must be a non-empty 1-D tensor, got shape {tuple(labels.shape)}")
    n_classes = int(labels.max()) + 1
    for name, count in (("n_labeled", n_labeled), ("n_holdout", n_holdout)):
        if count < 0 or count % n_classes:
            raise ValueError(f"{name}={count} must be a non-negative multiple of the {n_classes} classes (equal images per class)")
    per_labeled, per_holdout = n_labeled // n_classes, n_holdout // n_classes
    labeled, holdout, unlabeled = [], [], []
    for c in range(n_classes):
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < per_labeled + per_holdout:
            raise ValueError(f"class {c} has {len(idx)} images, fewer than the {per_labeled + per_holdout} requested per class")
        idx = idx[torch.randperm(len(idx), generator=generator)]
        labeled.append(idx[:per_labeled])
        holdout.append(idx[per_labeled : per_labeled + per_holdout])
        unlabeled.append(idx[per_labeled + per_holdout :])
    return SemiSupervisedSplit(*(torch.cat(part).sort().values for part in (labeled, unlabeled, holdout)))


def random_batches(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Endless minibatches of indices into ``range(n)``: a fresh permutation each epoch, every
    batch full (an epoch's remainder carries over), so labeled and unlabeled streams of
    different sizes can be zipped step by step.

    Args:
        n: dataset size (> 0).
        batch_size: indices per batch (> 0; may exceed ``n``).
        generator: the random source.

    Yields:
        int64 tensors of shape (batch_size,).
    """
    if n <= 0 or batch_size <= 0:
        raise ValueError(f"n and batch_size must be positive, got n={n}, batch_size={batch_size}")
    buffer = torch.empty(0, dtype=torch.long)
    while True:
        while len(buffer) < batch_size:
            buffer = torch.cat([buffer, torch.randperm(n, generator=generator)])
        yield buffer[:batch_size]
        buffer = buffer[batch_size:]
