"""The two in-memory forms of an image dataset used across the course."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ClassImages:
    """Images grouped by class, the form the episode sampler and the lectures use.

    Attributes:
        images: uint8 tensor of shape (n_classes, n_per_class, H, W) for grayscale or
            (n_classes, n_per_class, C, H, W) for colour images.
        class_names: ``n_classes`` names, e.g. ``"Greek/character03/rot090"``.
    """

    images: torch.Tensor
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.ndim not in (4, 5):
            raise ValueError(f"images must have shape (n_classes, n_per_class, [C,] H, W), got {tuple(self.images.shape)}")
        if len(self.class_names) != self.images.shape[0]:
            raise ValueError(f"{len(self.class_names)} class names for {self.images.shape[0]} classes")

    @property
    def n_classes(self) -> int:
        return self.images.shape[0]

    @property
    def n_per_class(self) -> int:
        return self.images.shape[1]

    def subset(self, classes: list[int] | torch.Tensor) -> "ClassImages":
        """The classes at the given indices, in that order."""
        idx = torch.as_tensor(classes, dtype=torch.long)
        return ClassImages(self.images[idx], [self.class_names[i] for i in idx.tolist()])

    def as_float(self) -> torch.Tensor:
        """All images as float32 in [0, 1], with a channel axis:
        shape (n_classes, n_per_class, C, H, W)."""
        x = self.images.float().div_(255)
        return x.unsqueeze(2) if x.ndim == 4 else x


@dataclass(frozen=True)
class LabeledImages:
    """A labelled image set held in memory.

    Attributes:
        images: uint8 tensor of shape (n, C, H, W) (CIFAR-10: (n, 3, 32, 32)).
        labels: int64 tensor of shape (n,), values in ``0..len(class_names)-1``.
        class_names: the label names.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __len__(self) -> int:
        return self.labels.shape[0]

    def subset(self, index: torch.Tensor | list[int]) -> "LabeledImages":
        """The examples at ``index`` (a long tensor or list of positions)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return LabeledImages(self.images[idx], self.labels[idx], self.class_names)
