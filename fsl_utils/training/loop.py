"""The course's one training loop, :func:`train`, and episodic training on top of it.

Episodic training (Vinyals et al. 2016) makes training look like testing: every step
samples an N-way K-shot task from the training classes, the method sees the support
set, classifies the query set, and the query loss is back-propagated::

    for episode in episodes:                       # Episode(support_x, support_y, query_x, query_y, class_ids)
        method.process_support_set(episode.support_x, episode.support_y)
        loss = F.cross_entropy(method(episode.query_x), episode.query_y)
        optimizer.zero_grad(); loss.backward(); optimizer.step()

:func:`train_episodic` runs exactly that, with a progress bar, periodic validation and a
:class:`History` for :func:`fsl_utils.plotting.plot_learning_curves`. :func:`train` is
the same loop for any batches and any loss (siamese pairs, MAML tasks, SSL views, and the
supervised minibatches of :func:`fsl_utils.training.supervised.train_supervised`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data.episodes import Episode

LossFn = Callable[[Any], "torch.Tensor | tuple[torch.Tensor, Mapping[str, float]]"]


@dataclass
class History:
    """Metrics logged during training, each with the steps it was logged at.

    Attributes:
        values: series name -> values, e.g. ``{"train loss": [...], "val acc": [...]}``.
        steps: series name -> the (1-based) training steps of those values.
        seconds: wall-clock seconds spent in training (validation excluded).
        cpu_seconds: process CPU seconds (all threads) spent in training.
    """

    values: dict[str, list[float]] = field(default_factory=dict)
    steps: dict[str, list[int]] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def log(self, step: int, **metrics: float) -> None:
        """Append ``metrics`` (name=value; underscores become spaces) at ``step``."""
        for key, value in metrics.items():
            name = key.replace("_", " ")
            self.values.setdefault(name, []).append(float(value))
            self.steps.setdefault(name, []).append(step)

    def last(self, name: str) -> float:
        """The most recent value of a series."""
        if not self.values.get(name):
            raise KeyError(f"no values logged under {name!r}; logged: {sorted(self.values)}")
        return self.values[name][-1]

    def select(self, *names: str) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
        """``(values, steps)`` of some series, ready for ``plot_learning_curves(*history.select(...))``."""
        missing = [n for n in names if n not in self.values]
        if missing:
            raise KeyError(f"no series {missing}; logged: {sorted(self.values)}")
        return {n: self.values[n] for n in names}, {n: self.steps[n] for n in names}


def episode_loss(method: nn.Module, episode: Episode) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of a few-shot method on an episode's query set, and its accuracy.

    Args:
        method: a :class:`~fsl_utils.methods.base.FewShotClassifier`.
        episode: one episode, already on the method's device.

    Returns:
        ``(loss, {"acc": accuracy in percent})``; the loss is a scalar with a graph.
    """
    method.process_support_set(episode.support_x, episode.support_y)
    logits = method(episode.query_x)
    loss = F.cross_entropy(logits, episode.query_y)
    acc = 100 * (logits.detach().argmax(dim=1) == episode.query_y).float().mean().item()
    return loss, {"acc": acc}


def _to(batch: Any, device: torch.device | None) -> Any:
    if device is None:
        return batch
    if hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(b, device) for b in batch)
    return batch


def train(
    model: nn.Module,
    batches: Iterable[Any],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    n_steps: int,
    *,
    validate: Callable[[], Any] | None = None,
    val_every: int | None = None,
    scheduler: Any | None = None,
    grad_clip: float | None = None,
    freeze_batchnorm: bool = False,
    device: torch.device | str | None = None,
    history: History | None = None,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """The training loop shared by the lectures: ``n_steps`` optimiser steps on ``batches``.

    Args:
        model: put in train mode for the loop (validation may switch modes; the loop
            switches back).
        batches: an iterable of batches (episodes, pairs, ...) with at least ``n_steps`` items.
        loss_fn: ``batch -> loss`` or ``batch -> (loss, {"acc": ..., ...})``; extra metrics
            are logged as ``"train <name>"``.
        optimizer: steps once per batch.
        n_steps: number of optimiser steps.
        validate: called every ``val_every`` steps and after the last one; returns an
            :class:`~fsl_utils.evaluation.EvalResult` (logged as ``"val acc"`` and
            ``"val ci95"``), a float (``"val acc"``) or a dict of floats (``"val <name>"``).
        val_every: validation period in steps (default: only at the end).
        scheduler: an LR scheduler stepped after every optimiser step.
        grad_clip: clip the global gradient norm to this value.
        freeze_batchnorm: keep BatchNorm layers in eval mode (running statistics) while the
            rest of the model trains, e.g. when fine-tuning on a few examples.
        device: batches are moved here (default: leave them where they are).
        history: continue an existing history (steps continue from its last step).
        progress: show a tqdm bar with the running loss and the last validation.
        desc: progress-bar label.

    Returns:
        The :class:`History` (``"train loss"`` every step, plus the validation series).
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if val_every is not None and val_every < 1:
        raise ValueError(f"val_every must be a positive integer or None, got {val_every!r}")
    history = history if history is not None else History()
    start_step = max((s[-1] for s in history.steps.values() if s), default=0)
    device = torch.device(device) if device is not None else None
    bar = tqdm(total=n_steps, desc=desc, disable=not progress, leave=False)
    postfix: dict[str, str] = {}
    done = 0
    _train_mode(model, freeze_batchnorm)
    try:
        for batch in islice(batches, n_steps):
            wall, cpu = time.perf_counter(), time.process_time()
            out = loss_fn(_to(batch, device))
            loss, metrics = out if isinstance(out, tuple) else (out, {})
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the loss became {loss.item()} at step {start_step + done + 1}; lower the learning rate or clip gradients"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            done += 1
            step = start_step + done
            history.log(step, train_loss=loss.item(), **{f"train_{k}": v for k, v in metrics.items()})
            history.seconds += time.perf_counter() - wall
            history.cpu_seconds += time.process_time() - cpu
            if validate is not None and ((val_every and done % val_every == 0) or done == n_steps):
                _log_validation(history, step, validate())
                _train_mode(model, freeze_batchnorm)
                postfix["val"] = f"{history.last('val acc'):.1f}" if "val acc" in history.values else ""
            postfix["loss"] = f"{sum(history.values['train loss'][-20:]) / len(history.values['train loss'][-20:]):.3f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update()
    finally:
        bar.close()
    if done < n_steps:
        raise ValueError(f"batches ran out after {done} of {n_steps} steps; pass an endless sampler or more batches")
    return history


def _train_mode(model: nn.Module, freeze_batchnorm: bool) -> None:
    model.train()
    if freeze_batchnorm:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def _log_validation(history: History, step: int, result: Any) -> None:
    if hasattr(result, "mean") and hasattr(result, "ci95"):
        history.log(step, val_acc=result.mean, val_ci95=result.ci95)
    elif isinstance(result, Mapping):
        history.log(step, **{f"val_{k}": v for k, v in result.items()})
    else:
        history.log(step, val_acc=float(result))


def train_episodic(
    method: nn.Module,
    episodes: Iterable[Episode],
    optimizer: torch.optim.Optimizer,
    n_steps: int,
    **kwargs: Any,
) -> History:
    """Episodic training of a few-shot method with the query cross-entropy (:func:`episode_loss`).

    Args:
        method: a :class:`~fsl_utils.methods.base.FewShotClassifier` with trainable parameters.
        episodes: training episodes, e.g. an endless ``EpisodeSampler`` over the training classes.
        optimizer: over the method's parameters.
        n_steps: number of episodes (= optimiser steps).
        **kwargs: passed to :func:`train` (``validate``, ``val_every``, ``scheduler``,
            ``device``, ``progress``, ...).

    Returns:
        The :class:`History` with ``"train loss"``, ``"train acc"`` and validation series.
    """
    return train(method, episodes, lambda episode: episode_loss(method, episode), optimizer, n_steps, **kwargs)
