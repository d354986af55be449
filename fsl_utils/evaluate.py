"""Evaluate any :class:`~fsl_utils.methods.base.FewShotClassifier` on episodes."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

import torch
from tqdm.auto import tqdm

from .data.episodes import Episode
from .report import mean_ci95


@dataclass(frozen=True)
class EvalResult:
    """Accuracy over episodes, in percent, with its 95% confidence interval.

    Attributes:
        mean: mean episode accuracy (%).
        ci95: half-width of the 95% confidence interval (%), 1.96 * std / sqrt(n).
        n_episodes: number of episodes evaluated.
        accuracies: per-episode accuracies (%), shape (n_episodes,).
        seconds: wall-clock time of the evaluation.
    """

    mean: float
    ci95: float
    n_episodes: int
    accuracies: torch.Tensor
    seconds: float

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.ci95:.2f}% ({self.n_episodes} episodes)"


def episode_accuracy(method: torch.nn.Module, episode: Episode, device: torch.device | str | None = None) -> float:
    """Fraction of the episode's queries the method classifies correctly."""
    device = device if device is not None else getattr(method, "device", None)
    episode = episode.to(device)
    method.process_support_set(episode.support_x, episode.support_y)
    logits = method(episode.query_x)
    if logits.shape != (episode.query_y.shape[0], episode.n_way):
        raise ValueError(f"method returned logits of shape {tuple(logits.shape)}, expected ({episode.query_y.shape[0]}, {episode.n_way})")
    return (logits.argmax(dim=1) == episode.query_y).float().mean().item()


def evaluate(
    method: torch.nn.Module,
    episodes: Iterable[Episode],
    n_episodes: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "eval",
) -> EvalResult:
    """Mean accuracy (%) and 95% CI of ``method`` over episodes.

    The method is put in eval mode (BatchNorm uses running statistics: the
    non-transductive protocol) and restored afterwards. Gradients are disabled unless
    ``method.needs_grad_at_test`` (e.g. MAML adapts on the support set).

    Args:
        method: a few-shot classifier (``process_support_set`` + ``forward``).
        episodes: an iterable of :class:`Episode`, e.g. an ``EpisodeSampler``.
        n_episodes: evaluate at most this many (default: all the iterable yields).
        device: where to run; default the method's device.
        progress: show a progress bar.
        desc: progress-bar label.

    Returns:
        :class:`EvalResult`.
    """
    if n_episodes is None:
        n_episodes = len(episodes)  # type: ignore[arg-type]
    was_training = method.training
    method.eval()
    accs = []
    start = time.perf_counter()
    try:
        with torch.set_grad_enabled(getattr(method, "needs_grad_at_test", False)):
            for episode in tqdm(islice(episodes, n_episodes), total=n_episodes, desc=desc, disable=not progress, leave=False):
                accs.append(100 * episode_accuracy(method, episode, device))
    finally:
        method.train(was_training)
    if not accs:
        raise ValueError("no episodes to evaluate")
    values = torch.tensor(accs)
    mean, ci = mean_ci95(values)
    return EvalResult(mean, ci, len(accs), values, time.perf_counter() - start)
