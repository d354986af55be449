"""Kernel side of the ProtoNet checks: the encoder's layers and outputs, the episode loss with an
encoder of known weights, and the embeddings of the submitted weights.

Inputs and expected values stay in ``solutions/protonet/hidden_tests.py``; nothing here is a
reference implementation of a graded function.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fsl_utils.data import Episode, to_float

from ..plain import describe_layers, encode
from .base import Submission, Task

_EMBED_CACHE: dict[tuple, torch.Tensor] = {}


def encoder_report(student: Submission, name: str, x: torch.Tensor) -> dict[str, Any]:
    """Build ``name()`` and describe it: layers, parameters and outputs on ``x``.

    Returns:
        ``layers`` (one string per leaf module, e.g. ``"Conv2d(1,64,k=3,s=1,p=1,bias=True)"``),
        ``foreign`` (module classes from forbidden packages), ``n_params``, ``out_eval``
        (eval mode, whole batch), ``out_single`` (eval mode, first item), ``out_train_shape``.
    """
    model = student.get(name)()
    if not isinstance(model, nn.Module):
        raise TypeError(f"`{name}()` returned a {type(model).__name__}, expected a torch.nn.Module")
    layers, foreign = describe_layers(model, student.forbidden_modules)
    model.train()
    out_train = model(x)
    model.eval()
    with torch.no_grad():
        out_eval, out_single = model(x), model(x[:1])
    return {
        "layers": layers, "foreign": foreign,
        "n_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "out_eval": encode(out_eval), "out_single": encode(out_single),
        "out_train_shape": list(out_train.shape) if isinstance(out_train, torch.Tensor) else None,
    }


def episode_loss(student: Submission, name: str, weight: torch.Tensor, bias: torch.Tensor, episode: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Call ``name(model, episode)`` with a ``Flatten -> Linear`` encoder of known ``weight`` (e, D)
    and ``bias`` (e,), then ``loss.backward()``.

    Returns:
        ``loss`` and ``accuracy`` (encoded), ``grad_weight`` and ``grad_bias`` (None when no
        gradient reached the encoder).
    """
    fn = student.get(name)
    linear = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    ep = Episode(*(torch.from_numpy(np.array(episode[k])) for k in Episode._fields))
    result = fn(nn.Sequential(nn.Flatten(), linear), ep)
    if not isinstance(result, tuple) or len(result) != 2:
        raise TypeError(f"`{name}` must return a tuple (loss, accuracy), got {type(result).__name__}")
    loss, accuracy = result
    grad_weight = grad_bias = None
    if type(loss) is torch.Tensor and loss.grad_fn is not None and loss.numel() == 1:
        loss.backward()
        if linear.weight.grad is not None and linear.bias.grad is not None:
            grad_weight, grad_bias = linear.weight.grad.numpy().copy(), linear.bias.grad.numpy().copy()
    return {"loss": encode(loss), "accuracy": encode(accuracy), "grad_weight": grad_weight, "grad_bias": grad_bias}


def embed_with_weights(student: Submission, name: str, filename: str, images: torch.Tensor) -> np.ndarray:
    """Embeddings of ``images`` by ``name()`` loaded with the weights in ``filename``.

    The file is read with ``torch.load(..., weights_only=True)`` (no pickled code) and must hold
    the model's ``state_dict``. The result is cached per class, file and images, so the two
    weights tests embed the images once.

    Args:
        images: (n, 1, 28, 28), uint8 in [0, 255] or float32 in [0, 1].

    Returns:
        float32 array of shape (n, d), computed in eval mode on the CPU.
    """
    cls = student.get(name)
    data = Path(filename).read_bytes()
    key = (id(cls), getattr(cls, "__qualname__", ""), hashlib.sha256(data).hexdigest(), hashlib.sha256(images.numpy().tobytes()).hexdigest())
    if key not in _EMBED_CACHE:
        state = torch.load(filename, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise TypeError(f"{filename} must hold a state_dict (a dict of tensors): save it with torch.save(model.state_dict(), path)")
        model = cls()
        model.load_state_dict(state)
        model.eval()
        x = to_float(images)
        with torch.no_grad():
            parts = [model(x[i : i + 500]) for i in range(0, len(x), 500)]
        for p in parts:
            if type(p) is not torch.Tensor:
                raise TypeError(f"`{name}` returned a {type(p).__name__}, expected a tensor")
        _EMBED_CACHE.clear()
        _EMBED_CACHE[key] = torch.cat(parts).float()
    return _EMBED_CACHE[key].numpy().copy()


TASKS: dict[str, Task] = {"encoder_report": encoder_report, "episode_loss": episode_loss, "embed_with_weights": embed_with_weights}
