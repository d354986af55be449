"""Kernel side of the SimCLR checks: call the student's functions on the arrays a check sends.

Each task builds what the student's function needs (a probe encoder, the notebook's encoder
loaded with the submitted weights), calls it and returns plain tensors. Inputs and expected
values stay in ``solutions/simclr/hidden_tests.py``; nothing here is a reference implementation
of a graded function (the course's own SimCLR pieces are forbidden while these tasks run, see
``FORBIDDEN`` of the hidden tests; ``CifarCNN`` and ``embed`` are given code).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fsl_utils.data import load_cifar10
from fsl_utils.encoders import CifarCNN
from fsl_utils.evaluation import embed

from .base import Submission, Task, encoded, flag, tensor_or_nan


def augment(student: Submission, images: torch.Tensor, size: int, seed: int) -> list[dict[str, Any]]:
    """``augment_pair(images, size)`` seeded twice: the two views, whether the seed reproduces them,
    whether ``images`` is unchanged."""
    original = images.clone()
    state = torch.get_rng_state()
    fn = student.get("augment_pair")
    try:
        torch.manual_seed(int(seed))
        out = fn(images, int(size))
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(f"augment_pair must return a tuple (view1, view2), got {type(out).__name__}")
        torch.manual_seed(int(seed))
        again = fn(images, int(size))
    finally:
        torch.set_rng_state(state)
    same = all(isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
               for a, b in zip(out, again))
    return encoded(out[0], out[1], flag(same), flag(torch.equal(images, original)))


def nt_xent(student: Submission, z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> list[dict[str, Any]]:
    """``nt_xent(z1, z2, temperature)``: the loss, its gradients w.r.t. z1 and z2, whether both arrive."""
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    loss = student.get("nt_xent")(a, b, float(temperature))
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"nt_xent must return a scalar tensor, got {type(loss).__name__} {tuple(getattr(loss, 'shape', ()))}")
    connected = False
    ga, gb = torch.zeros_like(a), torch.zeros_like(b)
    if loss.requires_grad:
        try:
            grads = torch.autograd.grad(loss.reshape(()), (a, b), allow_unused=True)
            connected = all(g is not None for g in grads)
            ga, gb = (torch.zeros_like(t) if g is None else g.detach() for t, g in zip((a, b), grads))
        except RuntimeError:
            pass
    return encoded(loss.detach().reshape(()), ga, gb, flag(connected))


def head(student: Submission, in_dim: int, hidden_dim: int, out_dim: int, h: torch.Tensor, seed: int) -> list[dict[str, Any]]:
    """``ProjectionHead(in_dim, hidden_dim, out_dim)`` on ``h``: its output, whether every parameter
    is trained, the shapes of its linear layers, and its outputs on combinations of two inputs
    (for the check of nonlinearity)."""
    torch.manual_seed(int(seed))
    module = student.get("ProjectionHead")(int(in_dim), int(hidden_dim), int(out_dim))
    if not isinstance(module, nn.Module):
        raise TypeError(f"ProjectionHead must be an nn.Module, got {type(module).__name__}")
    module.train()
    z = module(h)
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"ProjectionHead returned a {type(z).__name__}, expected a tensor")
    params = [p for p in module.parameters() if p.requires_grad]
    trained = False
    if z.requires_grad and params:
        grads = torch.autograd.grad(z.square().sum(), params, allow_unused=True)
        trained = all(g is not None and bool(g.abs().sum() > 0) for g in grads)
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    shapes = torch.tensor([list(m.weight.shape) for m in linears], dtype=torch.int64).reshape(-1, 2)
    module.eval()
    with torch.no_grad():
        x1, x2 = h[:1], h[1:2]
        f = module(torch.cat([x1, x2, x1 + x2, torch.zeros_like(x1), 2 * x1, -x2]))
    return encoded(z.detach(), flag(trained), shapes, tensor_or_nan(f))


class ProbeEncoder(nn.Module):
    """Flatten -> Linear -> BatchNorm1d: an encoder whose weights and running statistics must stay frozen."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        self.norm = nn.BatchNorm1d(weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(self.flatten(x)))


def linear_eval(student: Submission, weight: torch.Tensor, bias: torch.Tensor, train_x: torch.Tensor, train_y: torch.Tensor,
                test_x: torch.Tensor, test_y: torch.Tensor) -> list[dict[str, Any]]:
    """``linear_eval`` with a :class:`ProbeEncoder`: the accuracy, whether the encoder and the test labels are unchanged."""
    encoder = ProbeEncoder(weight, bias)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    labels = test_y.clone()
    acc = student.get("linear_eval")(encoder, train_x, train_y, test_x, test_y)
    after = encoder.state_dict()
    unchanged = set(after) == set(before) and all(torch.equal(after[k], v) for k, v in before.items())
    value = float(acc) if isinstance(acc, (int, float)) or (isinstance(acc, torch.Tensor) and acc.numel() == 1) else float("nan")
    return encoded(torch.tensor(value, dtype=torch.float64), flag(unchanged), flag(torch.equal(labels, test_y)))


def weights(student: Submission, pool: torch.Tensor, filename: str, n_test: int) -> list[dict[str, Any]]:
    """Features of the submitted encoder (``CifarCNN(n_classes=0)``) on the CIFAR-10 training images
    ``pool`` and the first ``n_test`` test images (the grader fits its own classifier on them)."""
    state = torch.load(filename, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TypeError(f"{filename} must hold a state_dict: save it with torch.save(encoder.state_dict(), path)")
    model = CifarCNN(n_classes=0)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{filename} does not fit the notebook's encoder CifarCNN(n_classes=0) (save the encoder, not the head): "
                         f"{str(err)[:300]}") from None
    pool_images = load_cifar10(train=True).images[pool]
    return encoded(embed(model, pool_images), embed(model, load_cifar10(train=False).images[: int(n_test)]))


TASKS: dict[str, Task] = {"augment": augment, "nt_xent": nt_xent, "head": head, "linear_eval": linear_eval, "weights": weights}
