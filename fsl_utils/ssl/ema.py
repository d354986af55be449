"""Exponential moving averages of weights: Mean Teacher's teacher and BYOL's target network."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def ema_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` to serve as EMA teacher/target (no parameter needs grad)."""
    target = copy.deepcopy(model)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, decay: float, copy_buffers: bool = True) -> None:
    """In place, ``θ′ ← γ θ′ + (1 − γ) θ`` for every parameter (Mean Teacher eq. 1, BYOL's ξ ← τξ + (1−τ)θ).

    Args:
        target: the EMA model θ′ (updated in place).
        online: the trained model θ, with the same architecture.
        decay: γ in [0, 1]; 0 copies the online weights, 1 leaves the target unchanged.
        copy_buffers: also copy buffers (BatchNorm running statistics) from the online model,
            so the target can be evaluated without its own training passes.

    Raises:
        ValueError: if ``decay`` is outside [0, 1] or the two models' parameters differ.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must lie in [0, 1], got {decay}")
    target_params, online_params = dict(target.named_parameters()), dict(online.named_parameters())
    if target_params.keys() != online_params.keys():
        raise ValueError("target and online models have different parameters; build the target with ema_copy(online)")
    for name, p_target in target_params.items():
        p_online = online_params[name]
        if p_target.shape != p_online.shape:
            raise ValueError(f"parameter {name}: target shape {tuple(p_target.shape)} != online shape {tuple(p_online.shape)}")
        p_target.mul_(decay).add_(p_online.detach(), alpha=1.0 - decay)
    if copy_buffers:
        online_buffers = dict(online.named_buffers())
        for name, b_target in target.named_buffers():
            b_target.copy_(online_buffers[name])


def cosine_ema_decay(step: int, total_steps: int, base: float = 0.996) -> float:
    """BYOL's target decay schedule ``τ = 1 − (1 − τ_base)(cos(πk/K) + 1)/2``: τ_base at step 0,
    rising to 1 at step K.

    Args:
        step: k, the current step (clipped to [0, K]).
        total_steps: K > 0.
        base: τ_base in [0, 1].

    Returns:
        τ for this step.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    k = min(max(step, 0), total_steps)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * k / total_steps) + 1.0) / 2.0
