"""The linear probe: multinomial logistic regression on frozen features, the course's one fitter.

Every linear classifier the course fits on fixed features goes through :func:`fit_linear_probe`:
the linear evaluation of self-supervised encoders (:func:`fsl_utils.ssl.linear_probe`), the
relevance-feedback probe (:class:`fsl_utils.retrieval.RelevanceFeedback`) and the few-shot
:class:`fsl_utils.methods.LinearProbe` (one fit per support set). It minimises

.. math::
    C \\sum_i s_i \\bigl(-\\log \\mathrm{softmax}(W z_i + b)_{y_i}\\bigr) + \\tfrac12 \\lVert W \\rVert^2

(:math:`s_i` the class weights, 1 by default; the bias is not penalised) with scikit-learn's
``LogisticRegression`` (L-BFGS): the objective is convex, so the established solver is all it
takes. For two classes scikit-learn fits one weight vector :math:`w` of the log-odds; the
classifier here then holds the rows :math:`\\mp w / 2`, whose softmax is the same
:math:`\\sigma(w^\\top z + b)`. Dividing the objective by :math:`C n` gives the form with a weight
decay, :math:`\\frac1n \\sum_i \\ell_i + \\frac{\\lambda}{2} \\lVert W \\rVert^2` with
:math:`\\lambda = 1 / (C n)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LinearClassifier:
    """A fitted probe, in the space of the features it was given (standardisation folded in).

    Attributes:
        weight: shape (n_classes, d), float64.
        bias: shape (n_classes,), float64.
    """

    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Class scores ``W z + b`` of shape (n, n_classes), in float64, for features (n, d)."""
        return features.detach().to("cpu", torch.float64) @ self.weight.T + self.bias

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted classes, int64 of shape (n,), for features (n, d)."""
        return self.logits(features).argmax(1)

    def decision(self, features: torch.Tensor) -> torch.Tensor:
        """Two classes only: the log-odds of class 1, shape (n,) (scikit-learn's ``decision_function``)."""
        if len(self.bias) != 2:
            raise ValueError(f"decision() is for a probe of two classes; this one has {len(self.bias)}: use logits()")
        scores = self.logits(features)
        return scores[:, 1] - scores[:, 0]


def fit_linear_probe(
    features: torch.Tensor,
    labels: torch.Tensor | np.ndarray,
    *,
    c: float | None = 1.0,
    standardize: bool = False,
    class_weight: str | dict | None = None,
    max_iter: int = 1000,
) -> LinearClassifier:
    """Fit the linear probe (see the module docstring) on frozen features.

    Args:
        features: shape (n, d); any device and float dtype (fitted in float64 on the CPU).
        labels: int labels of shape (n,), values 0..n_classes-1, every class present.
        c: scikit-learn's ``C``, the inverse L2 strength; ``None`` for no penalty.
        standardize: fit on features scaled to zero mean and unit variance per dimension
            (scikit-learn's ``StandardScaler``, fitted on these features); the returned
            classifier takes unscaled features.
        class_weight: scikit-learn's ``class_weight`` (``"balanced"`` weighs each class by
            ``n / (n_classes * n_c)``).
        max_iter: L-BFGS iterations at most.

    Returns:
        The :class:`LinearClassifier`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = features.detach().to("cpu", torch.float64).numpy()
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"features must be (n, d) with one label per row, got {x.shape} and labels {y.shape}")
    classes = np.unique(y)
    if len(classes) < 2 or not np.array_equal(classes, np.arange(len(classes))):
        raise ValueError(f"labels must be 0..n_classes-1 with every class present and at least two classes, got {classes.tolist()}")
    if c is not None and not c > 0:
        raise ValueError(f"c must be > 0 (or None for no penalty), got {c}")
    scaler = StandardScaler().fit(x) if standardize else None
    model = LogisticRegression(C=np.inf if c is None else c, class_weight=class_weight, max_iter=max_iter)
    model.fit(scaler.transform(x) if scaler is not None else x, y)
    weight, bias = model.coef_, model.intercept_
    if len(classes) == 2:  # one log-odds vector w: the rows -w/2, w/2 have the same softmax
        weight, bias = np.concatenate([-weight, weight]) / 2, np.concatenate([-bias, bias]) / 2
    if scaler is not None:  # W ((x - mean) / scale) + b = (W / scale) x + (b - (W / scale) mean)
        weight = weight / scaler.scale_
        bias = bias - weight @ scaler.mean_
    return LinearClassifier(torch.from_numpy(np.ascontiguousarray(weight)), torch.from_numpy(np.ascontiguousarray(bias)))
