"""Evaluating SSL models: the linear-evaluation protocol and the collapse measure of BYOL's ablation.

Features and classifier accuracy come from :func:`fsl_utils.evaluation.embed` and
:func:`fsl_utils.evaluation.evaluate_accuracy`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..evaluation.probe import fit_linear_probe


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    c: float = 1.0,
) -> float:
    """The linear evaluation protocol: logistic regression on frozen, standardised features
    (:func:`fsl_utils.evaluation.probe.fit_linear_probe`).

    Args:
        train_features: shape (n_train, d).
        train_labels: shape (n_train,).
        test_features: shape (n_test, d).
        test_labels: shape (n_test,).
        c: inverse L2 strength (scikit-learn's ``C``).

    Returns:
        Test accuracy in percent.
    """
    if train_features.ndim != 2 or test_features.ndim != 2 or train_features.shape[1] != test_features.shape[1]:
        raise ValueError(f"features must be (n, d) with the same d, got {tuple(train_features.shape)} and {tuple(test_features.shape)}")
    if len(train_features) != len(train_labels) or len(test_features) != len(test_labels):
        raise ValueError("each feature matrix needs one label per row")
    probe = fit_linear_probe(train_features, train_labels, c=c, standardize=True, max_iter=2000)
    return 100.0 * (probe.predict(test_features) == test_labels.cpu()).double().mean().item()


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
