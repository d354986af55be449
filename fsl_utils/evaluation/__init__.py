"""Evaluation: batched inference, accuracy with confidence intervals, few-shot episodes.

* :mod:`.inference` — :func:`embed`, the one eval-mode batched inference loop, and
  :func:`evaluate_accuracy`.
* :mod:`.stats` — :func:`accuracy` (percent, from logits) and :func:`mean_ci95`.
* :mod:`.probe` — :func:`fit_linear_probe`, the linear probe (logistic regression on frozen
  features) that the SSL evaluation, relevance feedback and :class:`~fsl_utils.methods.LinearProbe` fit.
* :mod:`.episodes` — :func:`evaluate` any few-shot method on episodes (:class:`EvalResult`),
  :func:`embed_classes`, :func:`batchnorm_batch_statistics`.
* :mod:`.predict` — bring your own images: :func:`~.predict.classify_folder`, :func:`~.predict.retrieve`.
* :mod:`.leaderboard`, :mod:`.cost`, :mod:`.verification` — the method comparison of lecture 9,
  its time and memory measurements, and pair-verification metrics (ROC, AUC).
"""

from .episodes import EvalResult, batchnorm_batch_statistics, embed_classes, episode_accuracy, evaluate
from .inference import embed, evaluate_accuracy
from .probe import LinearClassifier, fit_linear_probe
from .stats import accuracy, mean_ci95

__all__ = [
    "EvalResult",
    "LinearClassifier",
    "accuracy",
    "batchnorm_batch_statistics",
    "embed",
    "embed_classes",
    "episode_accuracy",
    "evaluate",
    "evaluate_accuracy",
    "fit_linear_probe",
    "mean_ci95",
]
