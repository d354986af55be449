"""The small CIFAR CNN shared by lectures 3 and 4 and ``bench/ssl_methods.py``.

Four blocks of 3x3 conv → BatchNorm → ReLU, the first three followed by 2x2 max-pooling,
then global average pooling: (B, 3, 32, 32) → (B, widths[-1]). With the default widths
(32, 64, 128, 128) it has 0.24 M parameters and trains at about 550 images/s on a quiet
2-core CPU (forward + backward), so a few CPU-minutes see ~100k images: the budget the
lectures are designed for. It is deliberately small; the papers use WideResNet-28-2 (1.5 M
parameters, ~100x the compute per image) or ResNets.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.cifar import MEAN, STD


class CifarCNN(nn.Module):
    """Encoder + linear classifier for 32x32 colour images.

    Args:
        n_classes: outputs of the linear classifier (0 for an encoder only, e.g. for SimCLR).
        widths: channels of the four conv blocks; the last one is the feature size.
        dropout: dropout before the classifier (the Π-model relies on dropout noise).

    Attributes:
        encoder: float images in [0, 1] of shape (B, 3, H, W) -> features h of shape
            (B, feature_dim); normalises with CIFAR-10's channel statistics itself.
        classifier: features -> logits of shape (B, n_classes) (``nn.Identity`` when n_classes=0).
        feature_dim: ``widths[-1]``.
    """

    def __init__(self, n_classes: int = 10, widths: tuple[int, ...] = (32, 64, 128, 128), dropout: float = 0.0) -> None:
        super().__init__()
        if len(widths) < 1 or min(widths) <= 0 or n_classes < 0:
            raise ValueError(f"need positive widths and n_classes >= 0, got widths={widths}, n_classes={n_classes}")
        layers: list[nn.Module] = [_Normalize()]
        in_channels = 3
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            in_channels = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.encoder = nn.Sequential(*layers)
        self.feature_dim = widths[-1]
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier: nn.Module = nn.Linear(self.feature_dim, n_classes) if n_classes > 0 else nn.Identity()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x of shape (B, 3, H, W), float in [0, 1]. Returns: h of shape (B, feature_dim)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            raise TypeError("got uint8 images; convert them with fsl_utils.ssl.to_float(x) (float in [0, 1])")
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x of shape (B, 3, H, W), float in [0, 1]. Returns: logits of shape (B, n_classes)."""
        return self.classifier(self.dropout(self.features(x)))


class _Normalize(nn.Module):
    """(x − mean) / std with CIFAR-10's per-channel statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
