"""Supervised minibatch training and evaluation, shared by the lectures.

* :func:`fit` — train any ``nn.Module`` on (inputs, labels) held in memory: uint8 images
  (converted to float [0, 1] batch by batch, optionally augmented) or precomputed
  features; Adam or SGD with a cosine learning-rate schedule and a tqdm bar.
* :func:`fit_linear_head` — a linear classifier on frozen features (the "linear probe").
* :func:`predict`, :func:`evaluate_accuracy`, :func:`accuracy` — batched inference.
* :func:`random_crop_flip`, :func:`random_affine`, :func:`few_labels` — CIFAR-style and
  handwriting-style augmentation, and a class-balanced draw of k labelled examples per class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class History:
    """What :func:`fit` saw: the loss and the batch accuracy (percent) of every step."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.loss)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1]; float tensors pass through."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def _check_pair(inputs: torch.Tensor, labels: torch.Tensor) -> None:
    if labels.ndim != 1 or labels.dtype != torch.long:
        raise ValueError(f"labels must be a 1-D int64 tensor, got shape {tuple(labels.shape)} and dtype {labels.dtype}")
    if inputs.shape[0] != labels.shape[0]:
        raise ValueError(f"{inputs.shape[0]} inputs but {labels.shape[0]} labels; they must pair up row by row")
    if inputs.shape[0] == 0:
        raise ValueError("no training examples: inputs is empty")


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Percentage of rows whose arg-max matches the label.

    Args:
        logits: shape (N, n_classes).
        labels: int64, shape (N,).
    """
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits must have shape (N, n_classes) matching labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    return 100.0 * (logits.argmax(dim=1) == labels.to(logits.device)).float().mean().item()


def random_crop_flip(x: torch.Tensor, generator: torch.Generator | None = None, padding: int = 4) -> torch.Tensor:
    """The standard CIFAR augmentation, batched: pad by reflection, crop back at a random
    offset, flip horizontally with probability 1/2 (each image independently).

    Args:
        x: float images of shape (B, C, H, W).
        generator: CPU generator for the random offsets and flips.
        padding: maximum shift in pixels.

    Returns:
        Augmented images of shape (B, C, H, W).
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, mode="reflect")
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)  # (B, H)
    cols = (dx[:, None] + torch.arange(w)[None, :]).to(x.device)  # (B, W)
    out = padded[torch.arange(b, device=x.device)[:, None, None, None], torch.arange(x.shape[1], device=x.device)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def _uniform(lo_hi: float | tuple[float, float], n: int, generator: torch.Generator | None, symmetric: bool = True) -> torch.Tensor:
    lo, hi = (-lo_hi, lo_hi) if isinstance(lo_hi, (int, float)) and symmetric else lo_hi  # type: ignore[misc]
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    degrees: float | tuple[float, float] = 15.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.8, 1.1),
    shear: float | tuple[float, float] = 10.0,
    fill: float = 0.0,
) -> torch.Tensor:
    """A random rotation, shear, scaling and translation per image, batched (bilinear).

    Suited to handwritten characters (e.g. Omniglot), where crops and flips would change
    the symbol but a small affine distortion keeps it.

    Args:
        x: float images of shape (B, C, H, W).
        generator: CPU generator for the parameters.
        degrees: rotation range in degrees, ``d`` meaning (-d, d), counter-clockwise positive.
        translate: maximum shift as a fraction of the side, in each direction.
        scale: range of the zoom factor.
        shear: horizontal shear range in degrees, ``s`` meaning (-s, s).
        fill: value of pixels that come from outside the image (0 for dark backgrounds).

    Returns:
        Transformed images of shape (B, C, H, W).
    """
    if x.ndim != 4:
        raise ValueError(f"random_affine takes a batch (B, C, H, W), got shape {tuple(x.shape)}")
    b = x.shape[0]
    angle = torch.deg2rad(_uniform(degrees, b, generator))
    shear_ = torch.tan(torch.deg2rad(_uniform(shear, b, generator)))
    zoom = _uniform(tuple(scale), b, generator, symmetric=False)  # type: ignore[arg-type]
    shift = torch.stack([_uniform(translate, b, generator), _uniform(translate, b, generator)], dim=1) * 2  # [-1, 1] coords
    cos, sin, one, zero = torch.cos(angle), torch.sin(angle), torch.ones(b), torch.zeros(b)
    # forward map A = zoom * R(angle) @ Shear; image rows grow downwards, hence the sign of sin
    rot = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)
    shr = torch.stack([torch.stack([one, shear_], 1), torch.stack([zero, one], 1)], 1)
    forward = zoom[:, None, None] * rot @ shr
    inverse = torch.linalg.inv(forward)  # affine_grid maps output coordinates to input ones
    theta = torch.cat([inverse, -(inverse @ shift[:, :, None])], dim=2).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def few_labels(labels: torch.Tensor, per_class: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Positions of ``per_class`` randomly chosen examples of every class (class-major).

    Args:
        labels: int64 labels of shape (N,).
        per_class: examples to draw from each class.
        generator: CPU generator; the same seed gives the same draw.

    Returns:
        Long tensor of shape (n_classes * per_class,).
    """
    classes = torch.unique(labels)
    picks = []
    for c in classes.tolist():
        pos = torch.nonzero(labels == c).flatten()
        if len(pos) < per_class:
            raise ValueError(f"class {c} has {len(pos)} examples, fewer than per_class={per_class}")
        picks.append(pos[torch.randperm(len(pos), generator=generator)[:per_class]])
    return torch.cat(picks)


def fit(
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
        The :class:`History` of losses and batch accuracies.
    """
    _check_pair(inputs, labels)
    n = inputs.shape[0]
    batch_size = min(batch_size, n)
    per_epoch = math.ceil(n / batch_size)
    if steps is None:
        if epochs is None:
            raise ValueError("give either steps or epochs")
        steps = epochs * per_epoch
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
    history = History()
    model.train()
    if bn_eval:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    order = torch.empty(0, dtype=torch.long)
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        if len(order) < batch_size:  # a fresh shuffle; leftovers of the last epoch are dropped
            order = torch.randperm(n, generator=generator)
        idx, order = order[:batch_size], order[batch_size:]
        x = _as_float(inputs[idx.to(inputs.device)].to(device))
        if augment is not None:
            x = augment(x, generator)
        y = labels[idx.to(labels.device)].to(device)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        history.loss.append(loss.item())
        history.accuracy.append(accuracy(logits.detach(), y))
        if step % 10 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}")
    model.eval()
    return history


@torch.no_grad()
def predict(
    model: nn.Module,
    inputs: torch.Tensor,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Outputs of ``model`` in eval mode for every input, in batches.

    Args:
        model: maps float (B, ...) to (B, d).
        inputs: uint8 images (N, C, H, W) (divided by 255) or float inputs (N, ...).
        batch_size: inputs per forward pass.
        device: where to run; default the model's device.
        progress: show a tqdm bar.

    Returns:
        float32 CPU tensor of shape (N, d).
    """
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [
        model(_as_float(inputs[s : s + batch_size].to(device))).float().cpu()
        for s in tqdm(range(0, len(inputs), batch_size), desc="predict", disable=not progress, leave=False)
    ]
    model.train(was_training)
    return torch.cat(out)


def evaluate_accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 256,
                      device: torch.device | str | None = None) -> float:
    """Accuracy (percent) of ``model`` on (inputs, labels), in eval mode."""
    _check_pair(inputs, labels)
    return accuracy(predict(model, inputs, batch_size, device), labels.cpu())


def fit_linear_head(
    features: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int | None = None,
    *,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> nn.Linear:
    """The linear probe: a linear classifier trained on frozen features.

    Minimises the cross-entropy of ``W f + b`` with AdamW (see :func:`fit`). Normalise
    the features first (e.g. ``F.normalize(features, dim=1)``) and apply the same
    normalisation at test time.

    Args:
        features: float features of shape (N, d).
        labels: int64 labels of shape (N,), values in 0..n_classes-1.
        n_classes: output size; default ``labels.max() + 1``.
        epochs, batch_size, lr, weight_decay, generator, device, progress: as in :func:`fit`.

    Returns:
        The trained ``nn.Linear(d, n_classes)`` (on ``device``, eval mode).
    """
    if features.ndim != 2 or not features.is_floating_point():
        raise ValueError(f"features must be a float tensor of shape (N, d), got {tuple(features.shape)} {features.dtype}")
    _check_pair(features, labels)
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    if int(labels.max()) >= n_classes or int(labels.min()) < 0:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {int(labels.min())}..{int(labels.max())}")
    device = torch.device(device) if device is not None else features.device
    head = nn.Linear(features.shape[1], n_classes).to(device)
    fit(head, features, labels, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        generator=generator, device=device, progress=progress, desc="linear head")
    return head
