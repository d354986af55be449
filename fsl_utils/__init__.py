"""Helpers for the course "Learning with few labeled examples".

Layers, lowest first; a module imports only from its own layer and the ones before it:

1. ``config``, ``device``, ``seeding`` — FAST budgets, :func:`get_device`, :func:`seed_everything`.
2. ``data`` — datasets in memory (Omniglot, CIFAR-10, image folders, intents), episodes and
   pair samplers, :func:`~fsl_utils.data.to_float` (the one uint8 -> float conversion).
3. ``evaluation.inference``, ``evaluation.stats`` and ``evaluation.probe`` —
   :func:`~fsl_utils.evaluation.embed`, the one batched eval-mode inference loop,
   :func:`~fsl_utils.evaluation.accuracy`, and :func:`~fsl_utils.evaluation.fit_linear_probe`,
   the one linear-probe fitter; they need only ``data``, so every layer above may use them.
4. ``encoders`` — Conv-4, frozen ImageNet encoders, the CIFAR CNN, a sentence encoder.
5. ``methods`` (few-shot classifiers behind one API) and ``ssl`` (losses, heads, EMA,
   augmentations, splits, the linear-evaluation protocol).
6. ``training`` (:func:`~fsl_utils.training.train`, the one loop; supervised and episodic
   training; recipes) and ``evaluation`` (episodes, leaderboard, cost, verification).
7. ``plotting``, ``retrieval``, ``widgets``; then ``course`` (build, results, check, student,
   colab, lab) and ``grading`` (instructors only).
"""

from .config import FAST, budget, is_fast
from .device import describe_device, get_device
from .seeding import seed_everything

__version__ = "0.1.0"

__all__ = [
    "FAST",
    "budget",
    "describe_device",
    "get_device",
    "is_fast",
    "seed_everything",
]
