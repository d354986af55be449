"""Probes: the only way hidden tests touch a student's code.

A hidden test never calls student objects directly; it asks a :class:`Probe` for plain
data (numpy arrays, floats, short strings) computed by the student's functions on inputs
the test chose. :class:`LocalProbe` runs them in the current interpreter (the notebook's
kernel, nbgrader's usual trust model); the hardened grader runs the same hidden tests
against a probe whose student code lives in another, sandboxed process. Either way the
tests compare *data* against oracles, so they do not depend on how a correct
implementation is written (loops or matrix products, float32 or float64, ...).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

#: Code a student must not borrow: the package's own few-shot methods and encoders,
#: and easyfsl (installed for a benchmark).
FORBIDDEN_PACKAGES = ("fsl_utils.methods", "fsl_utils.backbones", "easyfsl")


def _forbidden_roots() -> tuple[str, ...]:
    roots = []
    for name in FORBIDDEN_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        roots.append(str(origin.parent if origin.name == "__init__.py" else origin))
    return tuple(roots)


def encode(value: Any) -> dict[str, Any]:
    """One output of student code as plain data.

    Returns:
        ``{"kind": "tensor", "array": ndarray, "dtype": "float32", "grad_fn": bool}`` for a
        ``torch.Tensor`` (exactly that type), ``{"kind": "number", "value": float}`` for a
        Python or NumPy number, otherwise ``{"kind": "other", "type": <type name>}``.
    """
    if type(value) is torch.Tensor or type(value) is nn.Parameter:
        return {
            "kind": "tensor",
            "array": value.detach().cpu().numpy().copy() if value.dtype != torch.bfloat16 else value.detach().float().cpu().numpy(),
            "dtype": str(value.dtype).removeprefix("torch."),
            "grad_fn": value.grad_fn is not None,
        }
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return {"kind": "number", "value": float(value)}
    return {"kind": "other", "type": type(value).__name__}


class Probe(Protocol):
    """What hidden tests may ask about a submission (see :class:`LocalProbe`)."""

    def has(self, name: str) -> bool: ...
    def call(self, name: str, *args: Any, grad_weights: np.ndarray | None = None, substitutes: Any = None) -> dict[str, Any]: ...
    def encoder_report(self, name: str, x: np.ndarray) -> dict[str, Any]: ...
    def loss_probe(self, name: str, weight: np.ndarray, bias: np.ndarray, episode: dict[str, np.ndarray], substitutes: Any = None) -> dict[str, Any]: ...
    def embed_with_weights(self, name: str, path: str, images: np.ndarray) -> np.ndarray: ...
    def borrowed(self) -> list[str]: ...
    def source(self, name: str) -> str | None: ...


def _to_torch(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    return value


class LocalProbe:
    """Runs the student's objects, looked up by name in ``namespace``, in this process.

    Every call is traced (``sys.setprofile``): Python code executed from the forbidden
    packages (:data:`FORBIDDEN_PACKAGES`) is recorded and reported by :meth:`borrowed`.

    Args:
        namespace: the notebook's globals (``globals()`` in a test cell).
    """

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.namespace = namespace
        self._roots = _forbidden_roots()
        self._borrowed: set[str] = set()

    # -- helpers ---------------------------------------------------------------------
    def _get(self, name: str) -> Any:
        if name not in self.namespace:
            raise NameError(f"`{name}` is not defined: run the cell that defines it (and keep its name).")
        return self.namespace[name]

    @contextlib.contextmanager
    def _substituted(self, substitutes: Mapping[str, Callable[..., Any]] | None) -> Iterator[None]:
        """Temporarily replace the student's helpers (e.g. to test one function in isolation)."""
        saved = {k: self.namespace[k] for k in substitutes or {} if k in self.namespace}
        try:
            for k, v in (substitutes or {}).items():
                self.namespace[k] = v  # type: ignore[index]
            yield
        finally:
            for k in substitutes or {}:
                if k in saved:
                    self.namespace[k] = saved[k]  # type: ignore[index]
                else:
                    self.namespace.pop(k, None)  # type: ignore[attr-defined]

    def _traced(self, fn: Callable[..., Any], *args: Any) -> Any:
        roots = self._roots

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                filename = frame.f_code.co_filename
                if filename.startswith(roots):
                    self._borrowed.add(os.path.basename(filename))

        previous = sys.getprofile()
        sys.setprofile(profile if roots else None)
        try:
            return fn(*args)
        finally:
            sys.setprofile(previous)

    # -- the probe API ---------------------------------------------------------------
    def has(self, name: str) -> bool:
        """Whether the student's namespace defines ``name``."""
        return name in self.namespace

    def borrowed(self) -> list[str]:
        """Files of forbidden packages whose code ran during the probes so far."""
        return sorted(self._borrowed)

    def source(self, name: str) -> str | None:
        """Source code of the student's function or class ``name`` (None if unavailable)."""
        import inspect

        try:
            return inspect.getsource(self._get(name))
        except (OSError, TypeError):
            return None

    def call(
        self, name: str, *args: Any, grad_weights: np.ndarray | None = None, substitutes: Mapping[str, Callable[..., Any]] | None = None
    ) -> dict[str, Any]:
        """Call the student's function ``name`` on ``args`` (arrays become tensors).

        Args:
            name: function name in the namespace.
            *args: numpy arrays (converted to tensors of the same dtype) or numbers.
            grad_weights: if given, the first argument requires grad and the result is
                also differentiated: ``(output * grad_weights).sum().backward()``.
            substitutes: names in the student's namespace replaced during the call
                (reference helpers, so that one function is graded on its own).

        Returns:
            ``{"outputs": [encode(o) for each output], "grad": ndarray | None,
            "inputs_unchanged": bool}``.
        """
        fn = self._get(name)
        tensors = [_to_torch(a) for a in args]
        originals = [t.clone() for t in tensors if isinstance(t, torch.Tensor)]
        if grad_weights is not None:
            tensors[0] = tensors[0].clone().requires_grad_(True)
        with self._substituted(substitutes):
            result = self._traced(fn, *tensors)
        outputs = list(result) if isinstance(result, tuple) else [result]
        grad = None
        if grad_weights is not None:
            out = outputs[0]
            if type(out) is torch.Tensor and out.grad_fn is not None and out.shape == grad_weights.shape:
                (out * torch.from_numpy(grad_weights).to(out.dtype)).sum().backward()
                grad = None if tensors[0].grad is None else tensors[0].grad.detach().numpy().copy()
        after = [t for t in tensors if isinstance(t, torch.Tensor)]
        unchanged = all(a.detach().shape == b.shape and torch.equal(a.detach(), b) for a, b in zip(after, originals))
        return {"outputs": [encode(o) for o in outputs], "grad": grad, "inputs_unchanged": bool(unchanged)}

    def encoder_report(self, name: str, x: np.ndarray) -> dict[str, Any]:
        """Build ``name()`` and describe it: its layers, parameters and outputs on ``x``.

        Returns:
            ``layers``: one string per leaf module, e.g. ``"Conv2d(1,64,k=3,s=1,p=1,bias=True)"``;
            ``foreign``: classes of its modules defined in forbidden packages;
            ``n_params``; ``out_eval`` (eval mode, whole batch); ``out_single`` (eval mode,
            first item alone); ``out_train_shape``.
        """
        cls = self._get(name)
        model = self._traced(cls)
        if not isinstance(model, nn.Module):
            raise TypeError(f"`{name}()` returned a {type(model).__name__}, expected a torch.nn.Module")
        layers, foreign = [], []
        for module in model.modules():
            mod = type(module).__module__
            if mod.startswith(FORBIDDEN_PACKAGES):
                foreign.append(f"{mod}.{type(module).__name__}")
            if list(module.children()):
                continue
            if isinstance(module, nn.Conv2d):
                layers.append(
                    f"Conv2d({module.in_channels},{module.out_channels},k={module.kernel_size[0]},"
                    f"s={module.stride[0]},p={module.padding[0] if isinstance(module.padding, tuple) else module.padding},"
                    f"bias={module.bias is not None})"
                )
            elif isinstance(module, nn.BatchNorm2d):
                layers.append(f"BatchNorm2d({module.num_features})")
            elif isinstance(module, nn.MaxPool2d):
                k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
                layers.append(f"MaxPool2d({k})")
            else:
                layers.append(type(module).__name__)
        xt = torch.from_numpy(x.copy())
        model.train()
        out_train = self._traced(model, xt)
        model.eval()
        with torch.no_grad():
            out_eval = self._traced(model, xt)
            out_single = self._traced(model, xt[:1])
        return {
            "layers": layers,
            "foreign": foreign,
            "n_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
            "out_eval": encode(out_eval),
            "out_single": encode(out_single),
            "out_train_shape": list(out_train.shape) if isinstance(out_train, torch.Tensor) else None,
        }

    def loss_probe(
        self,
        name: str,
        weight: np.ndarray,
        bias: np.ndarray,
        episode: dict[str, np.ndarray],
        substitutes: Mapping[str, Callable[..., Any]] | None = None,
    ) -> dict[str, Any]:
        """Call ``name(model, episode)`` with a linear encoder of known weights; backprop.

        Args:
            name: the student's ``episode_loss_and_accuracy``.
            weight, bias: the encoder ``Flatten -> Linear`` of shape (e, D) and (e,).
            episode: arrays ``support_x, support_y, query_x, query_y, class_ids``.
            substitutes: as in :meth:`call`.

        Returns:
            ``loss`` and ``accuracy`` (encoded), ``grad_weight`` and ``grad_bias`` after
            ``loss.backward()`` (None when no gradient reached the encoder).
        """
        from ..data.episodes import Episode

        fn = self._get(name)
        linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight))
            linear.bias.copy_(torch.from_numpy(bias))
        model = nn.Sequential(nn.Flatten(), linear)
        ep = Episode(*(torch.from_numpy(episode[k].copy()) for k in Episode._fields))
        with self._substituted(substitutes):
            result = self._traced(fn, model, ep)
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(f"`{name}` must return a tuple (loss, accuracy), got {type(result).__name__}")
        loss, accuracy = result
        grad_weight = grad_bias = None
        if type(loss) is torch.Tensor and loss.grad_fn is not None and loss.numel() == 1:
            loss.backward()
            if linear.weight.grad is not None:
                grad_weight = linear.weight.grad.numpy().copy()
                grad_bias = linear.bias.grad.numpy().copy()
        return {"loss": encode(loss), "accuracy": encode(accuracy), "grad_weight": grad_weight, "grad_bias": grad_bias}

    def embed_with_weights(self, name: str, path: str, images: np.ndarray) -> np.ndarray:
        """Embeddings of ``images`` by ``name()`` with the weights file at ``path``.

        The file is read with ``torch.load(..., weights_only=True)`` (no pickled code)
        and must hold the model's ``state_dict``.

        Args:
            images: float32 array of shape (n, 1, 28, 28) in [0, 1].

        Returns:
            float32 array of shape (n, d), computed in eval mode on the CPU.
        """
        cls = self._get(name)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise TypeError(f"{path} must hold a state_dict (a dict of tensors): save it with torch.save(model.state_dict(), path)")
        model = self._traced(cls)
        model.load_state_dict(state)
        model.eval()
        xt = torch.from_numpy(images)
        with torch.no_grad():
            parts = [self._traced(model, xt[i : i + 500]) for i in range(0, len(xt), 500)]
        for p in parts:
            if type(p) is not torch.Tensor:
                raise TypeError(f"`{name}` returned a {type(p).__name__}, expected a tensor")
        return torch.cat(parts).float().numpy()
