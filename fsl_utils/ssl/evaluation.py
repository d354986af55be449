"""Evaluating SSL models: classifier accuracy, frozen features, the linear-evaluation protocol
and the collapse measure of BYOL's ablation."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def embed(
    fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    batch_size: int = 500,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Apply ``fn`` (an encoder, a classifier, ...) to uint8 images in batches, in eval mode.

    Args:
        fn: a module or function taking float images in [0, 1] of shape (B, C, H, W).
        images: uint8 tensor of shape (n, C, H, W).
        batch_size: images per forward pass.
        device: where to compute; default the module's device (or the CPU).

    Returns:
        The concatenated outputs on the CPU, shape (n, ...).
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images of shape (n, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if device is None:
        params = list(fn.parameters()) if isinstance(fn, nn.Module) else []
        device = params[0].device if params else torch.device("cpu")
    was_training = fn.training if isinstance(fn, nn.Module) else False
    if isinstance(fn, nn.Module):
        fn.eval()
    try:
        outs = [fn(images[i : i + batch_size].to(device).float().div_(255)).cpu() for i in range(0, len(images), batch_size)]
    finally:
        if isinstance(fn, nn.Module):
            fn.train(was_training)
    return torch.cat(outs)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy in percent of a classifier (eval mode) on uint8 images (n, C, H, W)."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    predictions = embed(model, images, batch_size).argmax(dim=1)
    return 100.0 * (predictions == labels.cpu()).float().mean().item()


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    c: float = 1.0,
) -> float:
    """The linear evaluation protocol: logistic regression on frozen, standardised features.

    Args:
        train_features: shape (n_train, d).
        train_labels: shape (n_train,).
        test_features: shape (n_test, d).
        test_labels: shape (n_test,).
        c: inverse L2 strength of scikit-learn's ``LogisticRegression``.

    Returns:
        Test accuracy in percent.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if train_features.ndim != 2 or test_features.ndim != 2 or train_features.shape[1] != test_features.shape[1]:
        raise ValueError(f"features must be (n, d) with the same d, got {tuple(train_features.shape)} and {tuple(test_features.shape)}")
    if len(train_features) != len(train_labels) or len(test_features) != len(test_labels):
        raise ValueError("each feature matrix needs one label per row")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    probe.fit(train_features.double().numpy(), train_labels.numpy())
    predictions = probe.predict(test_features.double().numpy())
    return 100.0 * float(np.mean(predictions == test_labels.numpy()))


def embedding_std(z: torch.Tensor) -> float:
    """Collapse measure (BYOL ablation; Chen & He 2021): the mean over dimensions of the std of
    the L2-normalised embeddings. About ``1/sqrt(d)`` for well spread embeddings, 0 when every
    input maps to the same point.

    Args:
        z: embeddings of shape (n, d), n ≥ 2.

    Returns:
        The mean per-dimension standard deviation of ``z / ‖z‖``.
    """
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"need embeddings of shape (n >= 2, d), got {tuple(z.shape)}")
    return F.normalize(z.float(), dim=1).std(dim=0).mean().item()
