"""Batched inference in eval mode: the one loop that runs a model over a tensor of inputs.

:func:`embed` is used for features (``extract_features``, ``embed_classes``), logits
(:func:`evaluate_accuracy`) and few-shot predictions (:func:`~fsl_utils.evaluation.predict.predict`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.containers import to_float
from .stats import accuracy


def _default_device(fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.device:
    params = list(fn.parameters()) if isinstance(fn, nn.Module) else []
    return params[0].device if params else torch.device("cpu")


def embed(
    fn: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    batch_size: int = 500,
    device: torch.device | str | None = None,
    progress: bool = False,
    desc: str = "embed",
) -> torch.Tensor:
    """Apply ``fn`` (an encoder, a classifier, a few-shot method, ...) to ``inputs`` in batches.

    Modules run in eval mode (their mode is restored afterwards) and without gradients,
    unless ``fn.needs_grad_at_test`` is true (MAML adapts at test time). Every batch is
    converted by :func:`~fsl_utils.data.containers.to_float` after moving it to ``device``.

    Args:
        fn: a module or function taking float inputs of shape (B, ...), e.g. images in
            [0, 1] of shape (B, C, H, W).
        inputs: uint8 images (N, C, H, W) or float inputs (N, ...) on any device.
        batch_size: inputs per forward pass.
        device: where to compute; default the module's device (or the CPU).
        progress: show a tqdm bar.
        desc: the bar's label.

    Returns:
        float32 CPU tensor of shape (N, ...): the outputs, concatenated, detached.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else _default_device(fn)
    module = fn if isinstance(fn, nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    try:
        with torch.set_grad_enabled(bool(getattr(fn, "needs_grad_at_test", False))):
            outs = [
                fn(to_float(inputs[s : s + batch_size].to(device))).detach().float().cpu()
                for s in tqdm(range(0, len(inputs), batch_size), desc=desc, disable=not progress, leave=False)
            ]
    finally:
        if module is not None:
            module.train(was_training)
    if not outs:
        raise ValueError("no inputs to embed: inputs is empty")
    return torch.cat(outs)


def evaluate_accuracy(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> float:
    """Accuracy (percent) of a classifier in eval mode: :func:`accuracy` of :func:`embed`'s logits.

    Args:
        model: maps float inputs (B, ...) to logits (B, n_classes).
        inputs: uint8 images (N, C, H, W) or float inputs (N, ...).
        labels: int64 labels of shape (N,).
        batch_size: inputs per forward pass.
        device: where to run; default the model's device.

    Returns:
        The percentage of inputs whose arg-max logit is the label.
    """
    if len(inputs) != len(labels):
        raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels; they must pair up row by row")
    return accuracy(embed(model, inputs, batch_size, device), labels.cpu())
