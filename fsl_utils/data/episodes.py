"""N-way K-shot Q-query episodes (tasks), sampled with an explicit ``torch.Generator``.

An episode is a named value, :class:`Episode`, always in **class-major order**: the
support set holds the K examples of episode class 0, then the K of class 1, and so on;
the query set the Q examples of class 0, then class 1, ... Labels are remapped to
``0..n_way-1``; ``class_ids[c]`` is the dataset class behind episode label ``c``.

:class:`EpisodeSampler` indexes an in-memory tensor of shape (n_classes, n_per_class, ...) —
thousands of episodes per second on a CPU. Every dataset of the course fits in memory, so there
is no sampler over dataset indices for images read from disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch

from .containers import ClassImages, to_float


class Episode(NamedTuple):
    """One few-shot task, class-major (see the module docstring).

    Attributes:
        support_x: shape (n_way * k_shot, *item_shape), e.g. (N*K, 1, 28, 28).
        support_y: shape (n_way * k_shot,), int64 labels ``[0]*K + [1]*K + ...``.
        query_x: shape (n_way * n_query, *item_shape).
        query_y: shape (n_way * n_query,), int64 labels in class-major order.
        class_ids: shape (n_way,), the dataset class index of each episode label.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    class_ids: torch.Tensor

    @property
    def n_way(self) -> int:
        return self.class_ids.shape[0]

    @property
    def k_shot(self) -> int:
        return self.support_y.shape[0] // self.n_way

    @property
    def n_query(self) -> int:
        return self.query_y.shape[0] // self.n_way

    def to(self, device: torch.device | str | None, non_blocking: bool = False) -> "Episode":
        """The same episode with every tensor on ``device`` (returns self for None)."""
        if device is None:
            return self
        return Episode(*(t.to(device, non_blocking=non_blocking) for t in self))


def _check_sizes(n_way: int, k_shot: int, n_query: int) -> None:
    for name, value in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_count(value: int | None, name: str = "n_episodes") -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer or None (endless), got {value!r}")


def _labels(n_way: int, per_class: int, device: torch.device | None = None) -> torch.Tensor:
    return torch.arange(n_way, device=device).repeat_interleave(per_class)


def class_tensor(data: ClassImages | torch.Tensor) -> torch.Tensor:
    """The tensor behind ``data``.

    Args:
        data: :class:`ClassImages` or a tensor of shape (n_classes, n_per_class, *item).

    Returns:
        The tensor of shape (n_classes, n_per_class, *item); ValueError for anything else.
    """
    images = data.images if isinstance(data, ClassImages) else data
    if not isinstance(images, torch.Tensor) or images.ndim < 3:
        raise ValueError("data must be ClassImages or a tensor of shape (n_classes, n_per_class, *item_shape)")
    return images


def as_float_items(x: torch.Tensor, batch_dims: int) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1], with a channel axis for grayscale (H, W) items.

    Args:
        x: uint8 of shape (*batch, H, W) or (*batch, C, H, W), or any other dtype (unchanged).
        batch_dims: how many leading axes ``*batch`` has.

    Returns:
        float32 of shape (*batch, C, H, W) in [0, 1] for uint8 input (C = 1 for grayscale).
    """
    if x.dtype == torch.uint8:
        x = to_float(x)
        if x.ndim == batch_dims + 2:
            x = x.unsqueeze(batch_dims)
    return x


class InMemorySampler:
    """Shared machinery of the samplers over an in-memory class tensor.

    Holds the tensor, the generator (seed 0 by default), the optional transform and the
    device; iterating yields :meth:`sample` ``n_draws`` times, or forever for None.
    """

    _unit = "draws"  # what one sample is called in the messages ("episodes", "batches")

    def __init__(
        self,
        data: ClassImages | torch.Tensor,
        n_draws: int | None,
        generator: torch.Generator | None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None,
        device: torch.device | str | None,
    ) -> None:
        self.images = class_tensor(data)
        _check_count(n_draws, f"n_{self._unit}")
        self.n_draws = n_draws
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.transform = transform
        self.device = torch.device(device) if device is not None else None

    def sample(self):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __len__(self) -> int:
        if self.n_draws is None:
            raise TypeError(f"this sampler is endless (n_{self._unit}=None) and has no length")
        return self.n_draws

    def __iter__(self) -> Iterator:
        count = 0
        while self.n_draws is None or count < self.n_draws:
            yield self.sample()
            count += 1


class EpisodeSampler(InMemorySampler):
    """Episodes drawn from an in-memory class tensor.

    Args:
        data: :class:`ClassImages` or a tensor of shape (n_classes, n_per_class, *item).
            uint8 images are scaled to float32 in [0, 1]; a channel axis is added to
            grayscale items of shape (H, W). Other dtypes (e.g. precomputed float
            features of shape (n_classes, n_per_class, d)) pass through unchanged.
        n_way: classes per episode.
        k_shot: support examples per class.
        n_query: query examples per class (disjoint from the support).
        n_episodes: episodes per iteration over the sampler; None iterates forever.
        generator: source of randomness; the same seed gives the same episodes.
        transform: optional function applied to the float batch of shape
            (n_way * (k_shot + n_query), *item) before it is split, e.g. normalisation.
        device: where the episode tensors are placed (default: stay on the CPU).
        aligned: draw the same example positions for every class of an episode instead of
            an independent choice per class. In Omniglot, position ``j`` of every character
            is drawer ``j``'s drawing, so with ``k_shot = n_query = 1`` one drawer makes the
            whole support set and another the whole query set: the one-shot runs of Lake et
            al. (2015) that Koch et al. (2015) report.

    Raises:
        ValueError: impossible sizes, e.g. more ways than classes, or
            ``k_shot + n_query`` larger than the examples per class.
    """

    def __init__(
        self,
        data: ClassImages | torch.Tensor,
        n_way: int,
        k_shot: int,
        n_query: int,
        n_episodes: int | None = None,
        generator: torch.Generator | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: torch.device | str | None = None,
        aligned: bool = False,
    ) -> None:
        _check_sizes(n_way, k_shot, n_query)
        super().__init__(data, n_episodes, generator, transform, device)
        n_classes, per_class = self.images.shape[:2]
        if n_way > n_classes:
            raise ValueError(f"n_way={n_way} but the data has only {n_classes} classes; lower n_way or use a larger split.")
        if k_shot + n_query > per_class:
            raise ValueError(
                f"k_shot + n_query = {k_shot} + {n_query} = {k_shot + n_query} exceeds the {per_class} examples per class; "
                f"support and query must be disjoint, so lower k_shot or n_query."
            )
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.aligned = aligned

    _unit = "episodes"

    @property
    def n_episodes(self) -> int | None:
        """Episodes per iteration (None: endless)."""
        return self.n_draws

    def sample(self) -> Episode:
        """Draw one episode (advances the generator)."""
        n_classes, per_class = self.images.shape[:2]
        n, k, q = self.n_way, self.k_shot, self.n_query
        class_ids = torch.randperm(n_classes, generator=self.generator)[:n]
        if self.aligned:  # one random order of the example positions, shared by every class
            picks = torch.randperm(per_class, generator=self.generator)[: k + q].expand(n, k + q)
        else:  # an independent random order of each class's examples, in one call
            picks = torch.rand(n, per_class, generator=self.generator).argsort(dim=1)[:, : k + q]
        x = as_float_items(self.images[class_ids[:, None], picks], batch_dims=2)  # (n, k+q, *item)
        if self.transform is not None:
            flat = self.transform(x.flatten(0, 1))
            x = flat.view(n, k + q, *flat.shape[1:])
        episode = Episode(
            support_x=x[:, :k].flatten(0, 1),
            support_y=_labels(n, k),
            query_x=x[:, k:].flatten(0, 1),
            query_y=_labels(n, q),
            class_ids=class_ids,
        )
        return episode.to(self.device)
