"""MAML's outer loop, one step at a time: :func:`meta_train_step` averages the query loss of a
meta-batch of episodes, each adapted by :class:`~fsl_utils.methods.MAML`, and steps θ.

It is a step, not a loop: the lectures and :func:`~fsl_utils.training.recipes.train_maml` call it
once per meta-batch, so a notebook can time, log or stop the meta-training as it likes.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..methods.maml import MAML


def meta_train_step(
    maml: MAML,
    episodes: Iterable,
    optimizer: torch.optim.Optimizer,
    first_order: bool | None = None,
    steps: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    """One outer step: average the query loss over a meta-batch of episodes and step θ.

    Args:
        maml: the wrapper whose parameters ``optimizer`` holds.
        episodes: the meta-batch, an iterable of :class:`~fsl_utils.data.Episode`.
        optimizer: outer optimiser (Adam in the paper).
        first_order, steps: override the wrapper's defaults for this step.
        device: where to run (default: leave the episodes where they are).

    Returns:
        ``(mean query loss, mean query accuracy in [0, 1])`` over the meta-batch.
    """
    optimizer.zero_grad(set_to_none=True)
    losses, accs = [], []
    episodes = list(episodes)
    for ep in episodes:
        ep = ep.to(device) if device is not None else ep
        loss, logits = maml.query_loss(ep.support_x, ep.support_y, ep.query_x, ep.query_y, steps=steps, first_order=first_order)
        (loss / len(episodes)).backward()  # backward per task frees each task's graph early
        losses.append(loss.item())
        accs.append((logits.argmax(1) == ep.query_y).float().mean().item())
    optimizer.step()
    return sum(losses) / len(losses), sum(accs) / len(accs)
