"""Linear probe: a logistic-regression classifier fitted on frozen support features.

The baseline every representation is measured against (e.g. Chen et al. 2019, "A
closer look at few-shot classification"; the linear evaluation of SimCLR/BYOL): the
backbone stays fixed and, for every episode, a fresh softmax classifier
:math:`p(y \\mid z) = \\mathrm{softmax}(W z + b)` is trained on the support features by
minimising

.. math::
    \\frac{1}{|S|} \\sum_{(z_i, y_i) \\in S} -\\log p(y_i \\mid z_i) + \\frac{\\lambda}{2} \\lVert W \\rVert^2

with :func:`fsl_utils.evaluation.probe.fit_linear_probe` (scikit-learn's L-BFGS; the objective
is convex, so the optimum does not depend on the initialisation). ``weight_decay``
:math:`\\lambda` is ``1 / (C |S|)`` in scikit-learn's ``LogisticRegression(C=...)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation.probe import fit_linear_probe
from .base import FewShotClassifier, check_support


class LinearProbe(FewShotClassifier):
    """Logistic regression on frozen features, refitted for every support set.

    Args:
        backbone: frozen feature extractor (B, *item_shape) -> (B, d) (used without
            gradients); ``nn.Identity()`` for precomputed features.
        weight_decay: L2 penalty on the weights (larger = smoother with 1-shot supports).
        normalize: L2-normalise the features first (usually helps with few shots).
        max_iter: L-BFGS iterations per support set at most.
    """

    def __init__(self, backbone: nn.Module, weight_decay: float = 1e-3, normalize: bool = True, max_iter: int = 1000) -> None:
        super().__init__()
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.backbone, self.weight_decay, self.normalize, self.max_iter = backbone, weight_decay, normalize, max_iter
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen features (B, d), L2-normalised if ``normalize``."""
        with torch.no_grad():
            z = self.backbone(x).flatten(1).float()
        return F.normalize(z, dim=1) if self.normalize else z

    def process_support_set(self, support_x: torch.Tensor, support_y: torch.Tensor) -> None:
        """Fit a fresh classifier on the support features (n_support, d)."""
        check_support(support_x, support_y)
        features = self.features(support_x)
        c = 1 / (self.weight_decay * len(features)) if self.weight_decay > 0 else None
        probe = fit_linear_probe(features, support_y, c=c, max_iter=self.max_iter)
        self.weight, self.bias = (t.to(features.device, features.dtype) for t in (probe.weight, probe.bias))

    def forward(self, query_x: torch.Tensor) -> torch.Tensor:
        """Class scores ``W z + b`` of shape (n_query, n_way)."""
        if self.weight is None or self.bias is None:
            raise RuntimeError("call process_support_set(support_x, support_y) before classifying queries")
        return self.features(query_x) @ self.weight.T + self.bias
