"""Balanced same/different pairs for siamese (twin) networks, as in Koch et al. (2015).

A batch of ``batch_size`` pairs holds ``batch_size // 2`` *same* pairs (two different
drawings of one class) followed by *different* pairs (drawings of two different
classes), so the binary cross-entropy sees both answers equally often: with
unbalanced random pairs a network that always says "different" would already be
right 1 - 1/n_classes of the time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from .containers import ClassImages
from .episodes import InMemorySampler, as_float_items


class Pairs(NamedTuple):
    """A batch of image pairs.

    Attributes:
        x1: first images, shape (batch, *item_shape).
        x2: second images, shape (batch, *item_shape).
        same: 1.0 where both images show the same class, else 0.0; shape (batch,).
        classes: dataset classes of (x1, x2), shape (batch, 2), int64.
    """

    x1: torch.Tensor
    x2: torch.Tensor
    same: torch.Tensor
    classes: torch.Tensor

    def to(self, device: torch.device | str | None) -> "Pairs":
        """The same pairs with every tensor on ``device`` (self for None)."""
        return self if device is None else Pairs(*(t.to(device) for t in self))


class PairSampler(InMemorySampler):
    """Batches of balanced same/different pairs from an in-memory class tensor.

    Args:
        data: :class:`ClassImages` or a tensor (n_classes, n_per_class, *item). uint8
            images become float32 in [0, 1] with a channel axis, as in the episode sampler.
        batch_size: pairs per batch (even, >= 2): half same, half different.
        n_batches: batches per iteration; None iterates forever.
        generator: source of randomness (same seed, same pairs).
        transform: optional function applied to the float images (B, C, H, W) of
            each side, e.g. a random affine distortion.
        device: where the batches are placed.

    Raises:
        ValueError: odd or too small ``batch_size``; fewer than 2 classes or fewer than
            2 examples per class.
    """

    def __init__(
        self,
        data: ClassImages | torch.Tensor,
        batch_size: int = 128,
        n_batches: int | None = None,
        generator: torch.Generator | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2 or batch_size % 2:
            raise ValueError(f"batch_size must be an even integer >= 2 (half same, half different pairs), got {batch_size!r}")
        super().__init__(data, n_batches, generator, transform, device)
        if self.images.shape[0] < 2 or self.images.shape[1] < 2:
            raise ValueError(
                f"pairs need >= 2 classes and >= 2 examples per class; the data has shape {tuple(self.images.shape[:2])}"
            )
        self.batch_size = batch_size

    _unit = "batches"

    def _as_float(self, x: torch.Tensor) -> torch.Tensor:
        x = as_float_items(x, batch_dims=1)
        return self.transform(x) if self.transform is not None else x

    def sample(self) -> Pairs:
        """Draw one batch (advances the generator)."""
        n_classes, per_class = self.images.shape[:2]
        half, g = self.batch_size // 2, self.generator
        # same: one class, two distinct examples (second = first + a non-zero offset)
        same_class = torch.randint(n_classes, (half,), generator=g)
        a = torch.randint(per_class, (half,), generator=g)
        b = (a + torch.randint(1, per_class, (half,), generator=g)) % per_class
        # different: two distinct classes, any examples
        rest = self.batch_size - half
        c1 = torch.randint(n_classes, (rest,), generator=g)
        c2 = (c1 + torch.randint(1, n_classes, (rest,), generator=g)) % n_classes
        e1 = torch.randint(per_class, (rest,), generator=g)
        e2 = torch.randint(per_class, (rest,), generator=g)
        cls1, cls2 = torch.cat([same_class, c1]), torch.cat([same_class, c2])
        x1 = self._as_float(self.images[cls1, torch.cat([a, e1])])
        x2 = self._as_float(self.images[cls2, torch.cat([b, e2])])
        same = (cls1 == cls2).float()
        return Pairs(x1, x2, same, torch.stack([cls1, cls2], dim=1)).to(self.device)
