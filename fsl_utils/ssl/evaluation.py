"""Evaluating SSL models: the linear-evaluation protocol and the collapse measure of BYOL's ablation.

Features and classifier accuracy come from :func:`fsl_utils.evaluation.embed` and
:func:`fsl_utils.evaluation.evaluate_accuracy`."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


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
