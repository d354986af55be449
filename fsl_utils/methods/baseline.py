"""The "closer look" baselines (Chen, Liu, Kira, Wang & Huang, "A Closer Look at Few-shot
Classification", ICLR 2019).

No episodes and no meta-learning: an encoder :math:`f_\\theta` and a classifier over *all*
base classes are trained with ordinary cross-entropy (:func:`pretrain_classifier`); for a
few-shot task the encoder is frozen and a **new** classifier over the task's :math:`N`
classes is trained on the support features (:class:`BaselineFinetune`).

* **Baseline**: a linear classifier, :math:`\\text{logits} = W f(x) + b`.
* **Baseline++**: a cosine classifier (:class:`CosineClassifier`) in both stages,
  :math:`\\text{logits}_k = s \\cos\\big(f(x), w_k\\big)`: each weight vector :math:`w_k` acts as
  a prototype of class :math:`k`, and the cosine removes the differences in feature norm
  between classes, which Chen et al. found to reduce intra-class variation.

Chen et al. fine-tune with SGD (learning rate 0.01, momentum 0.9, weight decay 0.001, batches
of 4, 100 epochs) and use :math:`s = 2` for at most 200 classes, 10 otherwise; here the new
head takes ``steps`` full-batch Adam steps on the support set (the support set is tiny).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import trange

from ..data.containers import ClassImages
from ..data.episodes import as_float_items
from .base import FewShotClassifier, check_support


def chen_scale(n_classes: int) -> float:
    """Chen et al.'s cosine scale: 2 for up to 200 classes, 10 beyond."""
    return 2.0 if n_classes <= 200 else 10.0


class CosineClassifier(nn.Module):
    """Scaled cosine similarity to one weight vector per class (Baseline++'s head).

    Args:
        in_features: feature size d.
        n_classes: number of classes.
        scale: the factor s (an inverse temperature); default :func:`chen_scale`.

    Shape:
        (B, d) -> logits (B, n_classes), each in [-s, s].
    """

    def __init__(self, in_features: int, n_classes: int, scale: float | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, in_features) * in_features ** -0.5)
        self.scale = chen_scale(n_classes) if scale is None else float(scale)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(z, dim=1) @ F.normalize(self.weight, dim=1).T


def make_head(in_features: int, n_classes: int, cosine: bool, scale: float | None = None) -> nn.Module:
    """A linear (Baseline) or cosine (Baseline++) classifier."""
    return CosineClassifier(in_features, n_classes, scale) if cosine else nn.Linear(in_features, n_classes)


def pretrain_classifier(
    data: ClassImages, backbone: nn.Module, feature_dim: int, steps: int, cosine: bool = False, batch_size: int = 128,
    lr: float = 1e-3, seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
) -> tuple[nn.Module, list[float]]:
    """Ordinary supervised training on every base class: the first stage of (Baseline, Baseline++).

    Each step draws ``batch_size`` random images of ``data`` (any classes) and minimises the
    cross-entropy of a classifier over all ``data.n_classes`` classes, with Adam.

    Args:
        data: base classes, images (n_classes, n_per_class, ...).
        backbone: encoder (B, *item) -> (B, feature_dim), trained in place.
        feature_dim: its output size.
        steps: optimiser steps.
        cosine: Baseline++'s cosine classifier instead of a linear one.
        batch_size, lr, seed: batches, Adam learning rate, sampling seed.
        device: where to train.
        progress: a progress bar.

    Returns:
        ``(backbone, losses)``: the trained encoder in eval mode (the classifier over the base
        classes is discarded, as in the paper) and the loss of every step.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    head = make_head(feature_dim, data.n_classes, cosine).to(device)
    backbone.to(device).train()
    optimizer = torch.optim.Adam(list(backbone.parameters()) + list(head.parameters()), lr=lr)
    g = torch.Generator().manual_seed(seed)
    n_classes, per_class = data.images.shape[:2]
    losses = []
    for _ in trange(steps, desc="Baseline++" if cosine else "Baseline", disable=not progress, leave=False):
        c = torch.randint(n_classes, (batch_size,), generator=g)
        i = torch.randint(per_class, (batch_size,), generator=g)
        x = as_float_items(data.images[c, i], batch_dims=1).to(device)
        loss = F.cross_entropy(head(backbone(x).flatten(1)), c.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return backbone.eval(), losses


class BaselineFinetune(FewShotClassifier):
    """A new classifier trained on the frozen support features of every episode.

    Args:
        backbone: the pre-trained encoder (B, *item) -> (B, d), used without gradients;
            ``nn.Identity()`` for precomputed features.
        cosine: Baseline++ (cosine classifier) instead of Baseline (linear classifier).
        steps: full-batch Adam steps on the support set.
        lr: Adam learning rate.
        weight_decay: L2 penalty on the head (Chen et al.: 0.001).
        scale: cosine scale (default :func:`chen_scale` of the episode's ways).
        seed: the head's initialisation (the same for every episode).
    """

    def __init__(self, backbone: nn.Module, cosine: bool = False, steps: int = 100, lr: float = 0.01,
                 weight_decay: float = 1e-3, scale: float | None = None, seed: int = 0) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.backbone, self.cosine, self.steps, self.lr = backbone, cosine, steps, lr
        self.weight_decay, self.scale, self.seed = weight_decay, scale, seed
        self.head: nn.Module | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen features (B, d)."""
        with torch.no_grad():
            return self.backbone(x).flatten(1).float()

    def process_support_set(self, support_x: torch.Tensor, support_y: torch.Tensor) -> None:
        """Train a fresh head (n_way classes) on the support features (n_support, d)."""
        n_way = check_support(support_x, support_y)
        z = self.features(support_x)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            head = make_head(z.shape[1], n_way, self.cosine, self.scale).to(z.device)
        optimizer = torch.optim.Adam(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        with torch.enable_grad():  # the evaluator runs under no_grad; fitting the head needs gradients
            for _ in range(self.steps):
                loss = F.cross_entropy(head(z), support_y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.head = head.eval()

    def forward(self, query_x: torch.Tensor) -> torch.Tensor:
        """Logits of the new head, shape (n_query, n_way)."""
        if self.head is None:
            raise RuntimeError("call process_support_set(support_x, support_y) before classifying queries")
        with torch.no_grad():
            return self.head(self.features(query_x))
