"""Evaluate any :class:`~fsl_utils.methods.base.FewShotClassifier` on episodes.

Also: :func:`batchnorm_batch_statistics` (the transductive BatchNorm protocol) and
:func:`embed_classes`, which embeds a whole split once so that methods whose
scores depend only on embeddings can be evaluated on thousands of episodes of
precomputed features (``backbone=nn.Identity()``) in seconds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.containers import ClassImages
from ..data.episodes import Episode
from .inference import embed
from .stats import mean_ci95


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
    """Fraction of the episode's queries the method classifies correctly.

    Args:
        method: a few-shot classifier; its ``forward`` returns logits of shape (n_query, n_way).
        episode: support_x (n_way * k_shot, ...), query_x (n_query, ...) and their labels.
        device: where to run (default: the method's ``device`` attribute, if any).

    Returns:
        The accuracy as a fraction in [0, 1].
    """
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
    transductive_bn: bool = False,
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
        transductive_bn: BatchNorm normalises with the statistics of the batch being
            embedded (the support set, then the query set) instead of the running
            statistics, as MAML's and many episodic codes do; the running statistics are
            left unchanged. See :func:`batchnorm_batch_statistics`.

    Returns:
        :class:`EvalResult`.
    """
    if n_episodes is None:
        n_episodes = len(episodes)  # type: ignore[arg-type]
    was_training = method.training
    method.eval()
    accs = []
    start = time.perf_counter()
    bn_mode = batchnorm_batch_statistics(method) if transductive_bn else contextlib.nullcontext()
    try:
        with bn_mode, torch.set_grad_enabled(getattr(method, "needs_grad_at_test", False)):
            for episode in tqdm(islice(episodes, n_episodes), total=n_episodes, desc=desc, disable=not progress, leave=False):
                accs.append(100 * episode_accuracy(method, episode, device))
    finally:
        method.train(was_training)
    if not accs:
        raise ValueError("no episodes to evaluate")
    values = torch.tensor(accs)
    mean, ci = mean_ci95(values)
    return EvalResult(mean, ci, len(accs), values, time.perf_counter() - start)


@contextlib.contextmanager
def batchnorm_batch_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, every BatchNorm layer of ``model`` uses batch statistics.

    The transductive protocol: test batches are normalised with their own mean and
    variance, so predictions for one query depend on the other items of its batch. The
    running statistics (and the layers' train/eval modes) are restored on exit, so the
    model is unchanged afterwards.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, {k: v.clone() for k, v in m.state_dict().items()}) for m in layers]
    try:
        for m in layers:
            m.train()
        yield model
    finally:
        for m, (mode, state) in zip(layers, saved):
            m.load_state_dict(state)
            m.train(mode)


def embed_classes(
    encoder: nn.Module,
    data: ClassImages | torch.Tensor,
    batch_size: int = 500,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Embed every image of a class-grouped split once, in eval mode, without gradients.

    Args:
        encoder: maps float (B, C, H, W) in [0, 1] to (B, d) (e.g. a trained Conv-4).
        data: :class:`ClassImages` or a uint8/float tensor (n_classes, n_per_class, [C,] H, W).
        batch_size: images per forward pass.
        device: where to run (default: the encoder's device).
        progress: show a progress bar.

    Returns:
        float32 CPU tensor of shape (n_classes, n_per_class, d), usable as the data of an
        ``EpisodeSampler``: with the same seed it yields the same episodes as the images.
    """
    images = data.images if isinstance(data, ClassImages) else data
    n_classes, per_class = images.shape[:2]
    flat = images.flatten(0, 1)
    if flat.ndim == 3:  # grayscale (H, W) items get a channel axis
        flat = flat.unsqueeze(1)
    return embed(encoder, flat, batch_size, device, progress=progress).view(n_classes, per_class, -1)
