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
        x = to_float(self.images)
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


def few_labels(labels: torch.Tensor, per_class: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Positions of ``per_class`` randomly chosen examples of every class (class-major).

    Args:
        labels: int64 labels of shape (N,).
        per_class: examples to draw from each class.
        generator: CPU generator; the same seed gives the same draw.

    Returns:
        Long tensor of shape (n_classes * per_class,).
    """
    classes = torch.unique(labels)
    picks = []
    for c in classes.tolist():
        pos = torch.nonzero(labels == c).flatten()
        if len(pos) < per_class:
            raise ValueError(f"class {c} has {len(pos)} examples, fewer than per_class={per_class}")
        picks.append(pos[torch.randperm(len(pos), generator=generator)[:per_class]])
    return torch.cat(picks)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """The one uint8 -> float conversion of the course: images in 0..255 -> float32 in [0, 1].

    Args:
        images: uint8 tensor of any shape, e.g. (B, C, H, W); float tensors are only cast
            to float32 (they are taken to be in [0, 1] already).

    Returns:
        float32 tensor of the same shape (a new tensor for uint8 input).
    """
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()
