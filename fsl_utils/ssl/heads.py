"""Projection and prediction heads (SimCLR's g(·), BYOL's projector and predictor q_θ)."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Sequential):
    """A two-layer MLP ``Linear → [BatchNorm] → ReLU → Linear``.

    SimCLR maps the representation h to z = g(h) with such a head and applies the loss to z;
    downstream tasks use h, taken *before* the head. BYOL uses the same shape (with
    BatchNorm) both for its projector and for its predictor (:class:`PredictionHead`).

    Args:
        in_dim: size of the input (the encoder's feature size).
        hidden_dim: size of the hidden layer.
        out_dim: size of the output z.
        batch_norm: put BatchNorm1d after the first layer (BYOL, SimCLR v2) or not (SimCLR v1).

    Shape:
        input (B, in_dim) -> output (B, out_dim).
    """

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128, batch_norm: bool = True) -> None:
        if min(in_dim, hidden_dim, out_dim) <= 0:
            raise ValueError(f"dimensions must be positive, got in={in_dim}, hidden={hidden_dim}, out={out_dim}")
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
        super().__init__(*layers)
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.ndim != 2 or h.shape[1] != self.in_dim:
            raise ValueError(f"expected features of shape (B, {self.in_dim}), got {tuple(h.shape)}")
        return super().forward(h)


class PredictionHead(ProjectionHead):
    """BYOL's predictor q_θ: the same MLP mapping a projection to a prediction of the target's
    projection, ``(B, dim) -> (B, dim)``. Only the online network has one; without it BYOL's
    representation collapses."""

    def __init__(self, dim: int = 128, hidden_dim: int = 512) -> None:
        super().__init__(dim, hidden_dim, dim, batch_norm=True)
