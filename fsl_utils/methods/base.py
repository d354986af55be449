"""One API for every few-shot method of the course (after easyfsl's FewShotClassifier).

A method first sees an episode's support set, then scores queries::

    method.process_support_set(episode.support_x, episode.support_y)
    logits = method(episode.query_x)          # (n_query_total, n_way)

ProtoNet, matching networks, siamese nearest-neighbour, linear probes, MAML and CLIP-style
zero-shot all answer an episode this way, so one evaluation harness
(:func:`fsl_utils.evaluation.evaluate`) compares them on identical episodes.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn


class FewShotClassifier(nn.Module):
    """Base class: ``process_support_set`` then ``forward(query_x) -> logits``.

    Subclasses implement both. ``forward`` must return logits of shape
    (n_query, n_way) whose argmax is the predicted episode label (0..n_way-1).
    """

    #: True when the method adapts weights by gradient steps on the support set
    #: (MAML, fine-tuned probes): the evaluator then keeps gradients enabled.
    needs_grad_at_test: bool = False

    @abstractmethod
    def process_support_set(self, support_x: torch.Tensor, support_y: torch.Tensor) -> None:
        """Store what the method needs from the support set.

        Args:
            support_x: support inputs of shape (n_way * k_shot, *item_shape).
            support_y: labels in 0..n_way-1, shape (n_way * k_shot,), any order.
        """

    @abstractmethod
    def forward(self, query_x: torch.Tensor) -> torch.Tensor:
        """Score queries against the processed support set.

        Args:
            query_x: query inputs of shape (n_query, *item_shape).

        Returns:
            Logits of shape (n_query, n_way).
        """

    def __getstate__(self) -> dict:
        """State for ``copy.deepcopy`` and pickling, support-set tensors detached.

        ``process_support_set`` keeps its results (prototypes, support embeddings) in the
        autograd graph so that episodic training can backpropagate through them; torch
        cannot deep-copy such non-leaf tensors, so copies of a fitted method get detached
        copies of them (same values, no graph) and the original keeps its graph.
        """
        state = self.__dict__.copy()
        for name, value in state.items():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                state[name] = value.detach()
        return state

    @property
    def device(self) -> torch.device:
        """Device of the first parameter or buffer (CPU for parameter-free methods)."""
        for t in list(self.parameters()) + list(self.buffers()):
            return t.device
        return torch.device("cpu")


def check_support(support_x: torch.Tensor, support_y: torch.Tensor) -> int:
    """Validate a support set and return its number of ways.

    Args:
        support_x: support items of shape (n_support, ...).
        support_y: int64 labels of shape (n_support,), covering 0..n_way-1.

    Returns:
        n_way, the number of classes.

    Raises:
        ValueError: mismatched lengths, labels not covering 0..n_way-1, or an empty set.
    """
    if support_x.shape[0] != support_y.shape[0] or support_y.ndim != 1 or support_y.numel() == 0:
        raise ValueError(
            f"support_x has {support_x.shape[0]} items but support_y has shape {tuple(support_y.shape)}; "
            "pass one label per support item"
        )
    n_way = int(support_y.max()) + 1
    present = torch.bincount(support_y, minlength=n_way)
    if support_y.min() < 0 or (present == 0).any():
        raise ValueError(f"support labels must cover 0..{n_way - 1} (remapped episode labels); got counts {present.tolist()}")
    return n_way
