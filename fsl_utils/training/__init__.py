"""Training: the one loop and what runs on it.

* :mod:`.loop` — :func:`train` (any batches, any loss, an optimiser; progress bar,
  periodic validation, a :class:`History`), :func:`train_episodic` and :func:`episode_loss`.
* :mod:`.supervised` — :func:`train_supervised` (cross-entropy on examples in memory, for any
  model: on an ``nn.Linear`` over cached features it trains a linear head by SGD), running :func:`train`.
* :mod:`.augment` — batched augmentations for supervised training.
* :mod:`.recipes` — one call per few-shot method to train it as lecture 9's leaderboard does.

Names: every gradient-descent loop is called ``train*``; ``fit*`` is kept for solving a
convex problem to its optimum (:func:`fsl_utils.evaluation.fit_linear_probe`).
"""

from .augment import random_affine, random_crop_flip
from .loop import History, episode_loss, train, train_episodic
from .supervised import train_supervised

__all__ = [
    "History",
    "episode_loss",
    "random_affine",
    "random_crop_flip",
    "train",
    "train_episodic",
    "train_supervised",
]
