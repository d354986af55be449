"""Prototypical networks (Snell, Swersky & Zemel, NeurIPS 2017).

Each class is represented by the mean of its embedded support examples, the
*prototype* :math:`c_k = \\frac{1}{|S_k|} \\sum_{(x_i, y_i) \\in S_k} f_\\phi(x_i)`, and a
query is classified by a softmax over negative distances to the prototypes,
:math:`p(y = k \\mid x) \\propto \\exp(-d(f_\\phi(x), c_k))`.

With the squared Euclidean distance this is a linear classifier on the embeddings
(Snell §2.4): :math:`-\\lVert z - c_k \\rVert^2 = 2 c_k^\\top z - \\lVert c_k \\rVert^2 - \\lVert z \\rVert^2`
and the last term is the same for every class, so the logits equal
:math:`W z + b` with :math:`W_k = 2 c_k`, :math:`b_k = -\\lVert c_k \\rVert^2` up to a
per-query constant (see :meth:`PrototypicalNetworks.linear_classifier`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import FewShotClassifier, check_support

DISTANCES = ("squared_euclidean", "euclidean", "cosine")


def class_means(embeddings: torch.Tensor, labels: torch.Tensor, n_way: int | None = None) -> torch.Tensor:
    """Mean embedding of every class (the prototypes); labels may come in any order.

    Args:
        embeddings: shape (n_support, d).
        labels: int64 labels in 0..n_way-1, shape (n_support,).
        n_way: number of classes (default ``labels.max() + 1``).

    Returns:
        Prototypes of shape (n_way, d); row k is the mean of the rows labelled k.
    """
    if n_way is None:
        n_way = int(labels.max()) + 1
    one_hot = F.one_hot(labels, n_way).to(embeddings.dtype)  # (n_support, n_way)
    counts = one_hot.sum(dim=0)
    if (counts == 0).any():
        raise ValueError(f"every class 0..{n_way - 1} needs at least one support example; counts {counts.tolist()}")
    return (one_hot.T @ embeddings) / counts[:, None]


def squared_euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances ``||x_i - y_j||^2``.

    Args:
        x: shape (n, d). y: shape (m, d).

    Returns:
        Shape (n, m), non-negative.
    """
    # ||x||^2 - 2 x.y + ||y||^2 is one matrix product; clamp the tiny negatives of round-off.
    d = x.pow(2).sum(1, keepdim=True) - 2 * x @ y.T + y.pow(2).sum(1)[None, :]
    return d.clamp_min(0)


def cosine_similarity_matrix(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pairwise cosine similarities.

    Args:
        x: shape (n, d). y: shape (m, d).

    Returns:
        Shape (n, m), values in [-1, 1].
    """
    return F.normalize(x, dim=1, eps=eps) @ F.normalize(y, dim=1, eps=eps).T


def negative_distance(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    """Scores of shape (n, m) that grow with similarity: ``-d(x_i, y_j)`` or the cosine.

    Args:
        x: shape (n, d). y: shape (m, d).
        distance: one of ``"squared_euclidean"``, ``"euclidean"``, ``"cosine"``.
    """
    if distance == "squared_euclidean":
        return -squared_euclidean(x, y)
    if distance == "euclidean":
        return -(squared_euclidean(x, y) + 1e-12).sqrt()
    if distance == "cosine":
        return cosine_similarity_matrix(x, y)
    raise ValueError(f"unknown distance {distance!r}; use one of {DISTANCES}")


class PrototypicalNetworks(FewShotClassifier):
    """Nearest-prototype classifier on a learned embedding.

    Args:
        backbone: maps inputs (B, *item_shape) to embeddings (B, d), e.g. ``Conv4()``;
            ``nn.Identity()`` for precomputed features.
        distance: ``"squared_euclidean"`` (the paper's choice), ``"euclidean"`` or
            ``"cosine"``.

    Example:
        >>> method = PrototypicalNetworks(Conv4())
        >>> method.process_support_set(episode.support_x, episode.support_y)
        >>> logits = method(episode.query_x)          # (n_query, n_way)
        >>> loss = F.cross_entropy(logits, episode.query_y)
    """

    def __init__(self, backbone: nn.Module, distance: str = "squared_euclidean") -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; use one of {DISTANCES}")
        self.backbone = backbone
        self.distance = distance
        self.prototypes: torch.Tensor | None = None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *item_shape) -> (B, d) flattened embeddings."""
        return self.backbone(x).flatten(1)

    def process_support_set(self, support_x: torch.Tensor, support_y: torch.Tensor) -> None:
        """Compute and keep the prototypes, shape (n_way, d).

        Args:
            support_x: shape (n_way * k_shot, *item_shape).
            support_y: labels 0..n_way-1 of shape (n_way * k_shot,), any order.
        """
        n_way = check_support(support_x, support_y)
        self.prototypes = class_means(self.embed(support_x), support_y, n_way)

    def forward(self, query_x: torch.Tensor) -> torch.Tensor:
        """Negative distances to the prototypes: logits of shape (n_query, n_way)."""
        if self.prototypes is None:
            raise RuntimeError("call process_support_set(support_x, support_y) before classifying queries")
        return negative_distance(self.embed(query_x), self.prototypes, self.distance)

    def linear_classifier(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The equivalent linear layer (squared Euclidean only): ``W = 2 c``, ``b = -||c||^2``.

        ``query_embeddings @ W.T + b`` differs from :meth:`forward`'s logits by
        ``-||z||^2``, the same for every class, so softmax and argmax agree.

        Returns:
            ``(W, b)`` of shapes (n_way, d) and (n_way,).
        """
        if self.distance != "squared_euclidean":
            raise ValueError("the linear-classifier view holds for the squared Euclidean distance only")
        if self.prototypes is None:
            raise RuntimeError("call process_support_set first")
        return 2 * self.prototypes, -self.prototypes.pow(2).sum(1)


class NearestCentroid(PrototypicalNetworks):
    """Nearest class mean on *frozen* features (SimpleShot-style baseline).

    The backbone is used without gradients; features are optionally L2-normalised
    (Wang et al. 2019: "SimpleShot") before the class means and distances.

    Args:
        backbone: frozen feature extractor, (B, *item) -> (B, d); ``nn.Identity()``
            for precomputed features.
        distance: as in :class:`PrototypicalNetworks`.
        normalize: L2-normalise the features first.
    """

    def __init__(self, backbone: nn.Module, distance: str = "squared_euclidean", normalize: bool = True) -> None:
        super().__init__(backbone, distance)
        self.normalize = normalize

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z = self.backbone(x).flatten(1).float()
        return F.normalize(z, dim=1) if self.normalize else z
