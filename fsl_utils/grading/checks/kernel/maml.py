"""Kernel side of the MAML checks: build the models the checks need and call the student's functions.

The student's functions take an ``nn.Module`` and parameter dictionaries, which plain data cannot
carry, so each task builds them here from the arrays a check sends (a small tanh network, or the
notebook's ``MAMLConvNet`` for the submitted weights), calls the student's function and returns
plain tensors. Inputs and expected values stay in ``solutions/maml/hidden_tests.py``; nothing here
is a reference implementation of a graded function.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from fsl_utils.data import Episode, to_float

from .base import Submission, Task, encoded, tensor_or_nan

#: Parameter names of :class:`ProbeNet`, in the order the checks send and receive them.
NAMES = ("features.1.weight", "features.1.bias", "head.weight", "head.bias")
_CONV_HIDDEN = 32


class ProbeNet(nn.Module):
    """``head(tanh(W1 x + b1))``: the network whose float64 oracle the checks compute."""

    def __init__(self, d: int, h: int, n: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(d, h), nn.Tanh())
        self.head = nn.Linear(h, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _block(c_in: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, _CONV_HIDDEN, 3, padding=1), nn.BatchNorm2d(_CONV_HIDDEN, track_running_stats=False),
                         nn.ReLU(), nn.MaxPool2d(2))


class ConvNet(nn.Module):
    """The notebook's ``MAMLConvNet`` (given code): the architecture the submitted weights must fit."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(_block(1), _block(_CONV_HIDDEN), _block(_CONV_HIDDEN), _block(_CONV_HIDDEN), nn.Flatten())
        self.head = nn.Linear(_CONV_HIDDEN, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _build(arrays: tuple[torch.Tensor, ...], own: bool) -> ProbeNet:
    """A :class:`ProbeNet` holding ``arrays`` (``own``) or constant weights that differ from them."""
    w1, _, w2, _ = arrays
    model = ProbeNet(w1.shape[1], w1.shape[0], w2.shape[0])
    with torch.no_grad():
        for p, a in zip(model.parameters(), arrays if own else [torch.full_like(t, 0.05) for t in arrays]):
            p.copy_(a)
    return model


def _leaves(arrays: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    return {n: a.clone().requires_grad_(True) for n, a in zip(NAMES, arrays)}


def _grads_of(total: Any, tensors: list[torch.Tensor]) -> tuple[list[torch.Tensor], float]:
    """d total / d tensors (zeros where no gradient arrives) and whether all arrived."""
    if not isinstance(total, torch.Tensor) or not total.requires_grad:
        return [torch.zeros_like(t) for t in tensors], 0.0
    try:
        gs = list(torch.autograd.grad(total, tensors, allow_unused=True))
    except RuntimeError:
        gs = [None] * len(tensors)
    return [torch.zeros_like(t) if g is None else g.detach() for t, g in zip(tensors, gs)], float(all(g is not None for g in gs))


def inner(student: Submission, *args: Any) -> list[dict[str, Any]]:
    """``inner_loop`` on a :class:`ProbeNet`: theta', d <weights, theta'> / d theta, and what it modified.

    Args: the four parameter arrays, support x and y, lr, steps, first_order, then one weight array per parameter.
    """
    arrays, (sx, sy, lr, steps, first_order), weights = args[:4], args[4:9], args[9:13]
    model = _build(arrays, own=False)  # the model's own weights differ from params
    params = _leaves(arrays)
    before = {n: p.detach().clone() for n, p in params.items()}
    own_before = [p.detach().clone() for p in model.parameters()]
    out = student.get("inner_loop")(model, params, sx, sy, float(lr), int(steps), bool(first_order))
    if not isinstance(out, dict) or set(out) != set(NAMES):
        raise TypeError("inner_loop must return a new dict with the same names as params "
                        f"({sorted(NAMES)}), got {sorted(out) if isinstance(out, dict) else type(out).__name__}")
    adapted = [out[n] for n in NAMES]
    if not all(isinstance(t, torch.Tensor) for t in adapted):
        raise TypeError("inner_loop must return a dict of tensors")
    total = sum((t * w).sum() for t, w in zip(adapted, weights) if t.requires_grad)
    grads, connected = _grads_of(total, list(params.values()))
    unchanged = float(all(torch.equal(params[n].detach(), before[n]) for n in NAMES))
    model_unchanged = float(all(torch.equal(p.detach(), b) for p, b in zip(model.parameters(), own_before)))
    return encoded(*[tensor_or_nan(t) for t in adapted], *grads, connected, unchanged, model_unchanged)


def task_loss(student: Submission, *args: Any) -> list[dict[str, Any]]:
    """``maml_task_loss`` on a :class:`ProbeNet`: query loss, accuracy, d loss / d theta, whether connected."""
    arrays, (sx, sy, qx, qy, lr, steps, first_order) = args[:4], args[4:11]
    model = _build(arrays, own=False)
    params = _leaves(arrays)
    episode = Episode(sx, sy, qx, qy, torch.arange(int(sy.max()) + 1))
    result = student.get("maml_task_loss")(model, params, episode, float(lr), int(steps), bool(first_order))
    if not isinstance(result, tuple) or len(result) != 2:
        raise TypeError(f"maml_task_loss must return a tuple (loss, accuracy), got {type(result).__name__}")
    loss, accuracy = result
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError("maml_task_loss must return the query loss as a scalar tensor")
    grads, connected = _grads_of(loss.reshape(()), list(params.values()))
    return encoded(tensor_or_nan(loss).reshape(()), accuracy, *grads, connected)


def meta_update(student: Submission, *args: Any) -> list[dict[str, Any]]:
    """Two ``meta_update`` calls (meta-batches of two tasks each, as 4-tuples of arrays) on a
    :class:`ProbeNet`: the parameters and the returned loss after each."""
    arrays, (lr, steps, first_order, beta), rest = args[:4], args[4:8], args[8:]
    model = _build(arrays, own=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=float(beta))
    outputs: list[Any] = []
    for b in range(2):
        tasks = [rest[8 * b + 4 * t: 8 * b + 4 * t + 4] for t in range(2)]
        batch = [Episode(*task, torch.arange(int(task[1].max()) + 1)) for task in tasks]
        result = student.get("meta_update")(model, optimizer, batch, float(lr), int(steps), bool(first_order))
        loss = result[0] if isinstance(result, tuple) and len(result) == 2 else float("nan")
        outputs += [*[p.detach().clone() for p in model.parameters()], torch.tensor(float(loss))]
    return encoded(*outputs)


def weights(student: Submission, *args: Any) -> list[dict[str, Any]]:
    """Query predictions of the submitted ``MAMLConvNet`` weights on fixed episodes, each adapted
    by ``steps`` plain SGD steps from a zero head (the grader's own test-time adaptation).

    Args: uint8 images (C, 20, 28, 28), classes (E, n_way), picks (E, n_way, k + q), k_shot, lr, steps, filename.
    """
    images, classes, picks, k_shot, lr, steps, filename = args
    state = torch.load(filename, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TypeError(f"{filename} must hold a state_dict: save it with torch.save(model.state_dict(), path)")
    model = ConvNet()
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{filename} does not fit the notebook's MAMLConvNet (keep its architecture): {str(err)[:300]}") from None
    x = to_float(images).unsqueeze(2)  # (C, 20, 1, 28, 28)
    predictions = []
    for cls, pick in zip(classes, picks):
        ex = x[cls[:, None], pick]  # (n_way, k + q, 1, 28, 28)
        support, query = ex[:, :k_shot].flatten(0, 1), ex[:, k_shot:].flatten(0, 1)
        labels = torch.arange(ex.shape[0]).repeat_interleave(int(k_shot))
        # the notebook's initial_params: the body's weights, the head from zero
        params = {n: (torch.zeros_like(p) if n.startswith("head.") else p.detach().clone()).requires_grad_(True)
                  for n, p in model.named_parameters()}
        for _ in range(int(steps)):
            loss = nn.functional.cross_entropy(functional_call(model, params, (support,)), labels)
            grads = torch.autograd.grad(loss, list(params.values()))
            params = {n: (p - float(lr) * g).detach().requires_grad_(True) for (n, p), g in zip(params.items(), grads)}
        with torch.no_grad():
            predictions.append(functional_call(model, params, (query,)).argmax(1))
    return encoded(torch.stack(predictions))


TASKS: dict[str, Task] = {"inner": inner, "task_loss": task_loss, "meta_update": meta_update, "weights": weights}
