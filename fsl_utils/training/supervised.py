"""Supervised minibatch training on examples held in memory, on top of the one loop.

* :func:`train_supervised` — train any ``nn.Module`` with cross-entropy on (inputs, labels):
  uint8 images (converted to float [0, 1] batch by batch, optionally augmented) or
  precomputed features; AdamW or SGD with a cosine learning-rate schedule. On an
  ``nn.Linear`` over cached features it trains a linear head by minibatch SGD (lecture 1);
  :func:`fsl_utils.evaluation.fit_linear_probe` solves the same convex problem to its optimum.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..data.containers import to_float
from ..evaluation.stats import accuracy
from .loop import History, train

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _check_pair(inputs: torch.Tensor, labels: torch.Tensor) -> None:
    if labels.ndim != 1 or labels.dtype != torch.long:
        raise ValueError(f"labels must be a 1-D int64 tensor, got shape {tuple(labels.shape)} and dtype {labels.dtype}")
    if inputs.shape[0] != labels.shape[0]:
        raise ValueError(f"{inputs.shape[0]} inputs but {labels.shape[0]} labels; they must pair up row by row")
    if inputs.shape[0] == 0:
        raise ValueError("no training examples: inputs is empty")



def shuffled_batches(
    inputs: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    augment: Augment | None = None,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless minibatches: a fresh shuffle by ``generator`` each epoch (an epoch's leftover
    smaller than ``batch_size`` is dropped), converted by :func:`~fsl_utils.data.to_float`.

    Args:
        inputs: uint8 images (N, C, H, W) or float inputs (N, ...), on any device.
        labels: int64 labels of shape (N,).
        batch_size: examples per batch (at most N).
        generator: CPU generator for the shuffles and ``augment``.
        augment: ``augment(x, generator) -> x`` applied to every float batch.
        device: where the batches go.

    Yields:
        ``(x, y)`` of shapes (batch_size, ...) and (batch_size,), on ``device``.
    """
    n = inputs.shape[0]
    order = torch.empty(0, dtype=torch.long)
    while True:
        if len(order) < batch_size:
            order = torch.randperm(n, generator=generator)
        idx, order = order[:batch_size], order[batch_size:]
        x = to_float(inputs[idx.to(inputs.device)].to(device))
        if augment is not None:
            x = augment(x, generator)
        yield x, labels[idx.to(labels.device)].to(device)


def cross_entropy_step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of ``model`` on a batch and its batch accuracy: the loss of :func:`train_supervised`.

    Args:
        model: maps x of shape (B, ...) to logits of shape (B, n_classes).
        batch: ``(x, y)`` with int64 labels y of shape (B,).

    Returns:
        ``(loss, {"acc": accuracy in percent})``; the loss is a scalar with a graph.
    """
    x, y = batch
    logits = model(x)
    return F.cross_entropy(logits, y), {"acc": accuracy(logits.detach(), y)}


def train_supervised(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: str = "adam",
    augment: Augment | None = None,
    bn_eval: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train ``model`` with cross-entropy on examples held in memory.

    Every parameter with ``requires_grad`` is trained (freeze a part by setting its
    ``requires_grad`` to False). Batches are drawn by shuffling the examples each epoch
    with ``generator``; the learning rate follows a cosine decay to zero over all
    steps. The model is left in eval mode.

    Args:
        model: maps a float batch (B, ...) to logits (B, n_classes).
        inputs: uint8 images (N, C, H, W) (divided by 255 per batch) or float
            inputs (N, ...) such as features, on any device.
        labels: int64 class indices of shape (N,).
        steps: number of optimiser steps; or give ``epochs`` (passes over the data).
        epochs: used when ``steps`` is None.
        batch_size: examples per step (capped at N).
        lr: peak learning rate.
        weight_decay: L2 penalty (decoupled for Adam, i.e. AdamW).
        optimizer: ``"adam"`` (AdamW) or ``"sgd"`` (momentum 0.9, Nesterov).
        augment: ``augment(x, generator) -> x`` applied to every float batch.
        bn_eval: keep BatchNorm layers in eval mode (their running statistics, not the
            batch's) — the usual choice when fine-tuning a pretrained network on a few
            examples, whose batches are too small for reliable statistics.
        generator: CPU generator for shuffling and augmentation.
        device: where to train; default the model's device.
        progress: show a tqdm bar with the running loss.
        desc: the bar's label.

    Returns:
        The :class:`~fsl_utils.training.loop.History` with ``"train loss"`` and ``"train acc"``
        (batch accuracy in percent) at every step.
    """
    _check_pair(inputs, labels)
    n = inputs.shape[0]
    batch_size = min(batch_size, n)
    if steps is None:
        if epochs is None:
            raise ValueError("give either steps or epochs")
        steps = epochs * math.ceil(n / batch_size)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    if device is None:
        device = params[0].device
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    batches = shuffled_batches(inputs, labels, batch_size, generator, augment, device)
    history = train(model, batches, lambda batch: cross_entropy_step(model, batch), opt, steps, scheduler=schedule,
                    freeze_batchnorm=bn_eval, progress=progress, desc=desc)
    model.eval()
    return history
