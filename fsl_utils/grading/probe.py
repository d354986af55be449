"""Probes: the only way hidden tests touch a student's code.

A hidden test never calls student objects directly; it asks a probe for plain data (numpy
arrays, numbers, short strings) computed by the student's functions on inputs the test
chose, and compares that data with float64 oracles. So the tests do not depend on how a
correct implementation is written (loops or matrix products, float32 or float64, ...).

* :class:`LocalProbe` runs the student's objects in the current interpreter. The source
  notebook's hidden cells use it (``run_hidden_test``), e.g. under nbval.
* :class:`~.remote.RemoteProbe` (what autograding uses) sends each request to the student's
  sandboxed kernel, where a :class:`LocalProbe` answers it: the hidden tests and their
  oracles stay in the grader's process and never enter the student's kernel.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from .probe_utils import (
    FORBIDDEN_PACKAGES,
    compile_helpers,
    describe_layers,
    encode,
    forbidden_functions,
    forbidden_roots,
    module_packages,
    to_torch,
)

_EMBED_CACHE: dict[tuple, np.ndarray] = {}

class Probe(Protocol):
    """What hidden tests may ask about a submission (see :class:`LocalProbe`)."""

    def has(self, name: str) -> bool: ...
    def call(self, name: str, *args: Any, grad_weights: np.ndarray | None = None, substitutes: str | None = None) -> dict[str, Any]: ...
    def encoder_report(self, name: str, x: np.ndarray) -> dict[str, Any]: ...
    def loss_probe(self, name: str, weight: np.ndarray, bias: np.ndarray, episode: dict[str, np.ndarray], substitutes: str | None = None) -> dict[str, Any]: ...
    def file_info(self, filename: str) -> dict[str, Any]: ...
    def embed_with_weights(self, name: str, filename: str, images: np.ndarray) -> np.ndarray: ...
    def source(self, name: str) -> str | None: ...
    def borrowed(self) -> list[str]: ...
    def forbid(self, packages: Sequence[str]) -> None: ...
    def tampering(self) -> list[str]: ...


class LocalProbe:
    """Runs the student's objects, looked up by name in ``namespace``, in this process.

    Every call is traced (``sys.setprofile``): Python code executed from the forbidden
    packages (:data:`FORBIDDEN_PACKAGES`, plus those added by :meth:`forbid`) is recorded
    and reported by :meth:`borrowed`; code that runs outside the probe's calls (e.g. the
    notebook's given cells) is never traced. File names are relative to the current folder
    (the notebook's).

    Args:
        namespace: the notebook's globals (``globals()`` in a test cell).
        forbidden: more packages, modules or ``"module:function"`` entries to forbid
            (as :meth:`forbid`).
    """

    def __init__(self, namespace: Mapping[str, Any], forbidden: Iterable[str] = ()) -> None:
        self.namespace = namespace
        self._packages: tuple[str, ...] = ()
        self._borrowed: set[str] = set()
        self.forbid(FORBIDDEN_PACKAGES)
        self.forbid(forbidden)

    def forbid(self, packages: Iterable[str]) -> None:
        """Also forbid ``packages`` in the calls that follow: dotted names of packages or
        modules (all their code), or ``"module:function"`` (that one function; e.g.
        ``"fsl_utils.ssl.evaluation:linear_probe"`` while the same module's ``embed`` stays
        allowed). An assignment lists them in ``FORBIDDEN`` of its ``hidden_tests.py``;
        :func:`.hidden.run_check` passes them on. Names not installed are ignored."""
        new = tuple(str(p) for p in packages if str(p) not in self._packages)
        if not new:
            return
        self._packages += new
        self._roots = forbidden_roots(self._packages)
        self._functions = forbidden_functions(self._packages)

    def _get(self, name: str) -> Any:
        if name not in self.namespace:
            raise NameError(f"`{name}` is not defined: run the cell that defines it (and keep its name).")
        return self.namespace[name]

    @contextlib.contextmanager
    def _substituted(self, source: str | None) -> Iterator[None]:
        """Temporarily replace the student's helpers (to grade one function on its own)."""
        helpers = compile_helpers(source)
        saved = {k: self.namespace[k] for k in helpers if k in self.namespace}
        try:
            for k, v in helpers.items():
                self.namespace[k] = v  # type: ignore[index]
            yield
        finally:
            for k in helpers:
                if k in saved:
                    self.namespace[k] = saved[k]  # type: ignore[index]
                else:
                    self.namespace.pop(k, None)  # type: ignore[attr-defined]

    def _traced(self, fn: Callable[..., Any], *args: Any) -> Any:
        roots, functions, seen = self._roots, self._functions, self._borrowed

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                code = frame.f_code
                if code.co_filename.startswith(roots):
                    seen.add(os.path.basename(code.co_filename))
                elif functions and (code.co_filename, code.co_name) in functions:
                    seen.add(f"{os.path.basename(code.co_filename)}:{code.co_name}")

        previous = sys.getprofile()
        sys.setprofile(profile if roots or functions else None)
        try:
            return fn(*args)
        finally:
            sys.setprofile(previous)

    def has(self, name: str) -> bool:
        """Whether the student's namespace defines ``name``."""
        return name in self.namespace

    def borrowed(self) -> list[str]:
        """Files of forbidden packages (``"file.py:function"`` for forbidden functions) whose
        code ran during the probes so far."""
        return sorted(self._borrowed)

    def tampering(self) -> list[str]:
        """Comparison/reporting functions replaced in this process (see ``hidden.tampering``)."""
        from .hidden import tampering

        return tampering()

    def source(self, name: str) -> str | None:
        """Source code of the student's function or class ``name`` (None if unavailable)."""
        import inspect

        try:
            return inspect.getsource(self._get(name))
        except (OSError, TypeError):
            return None

    def call(self, name: str, *args: Any, grad_weights: np.ndarray | None = None, substitutes: str | None = None) -> dict[str, Any]:
        """Call the student's function ``name`` on ``args`` (arrays become tensors).

        Args:
            name: function name in the namespace.
            *args: numpy arrays (converted to tensors of the same dtype) or numbers.
            grad_weights: if given, the first argument requires grad and the result is
                differentiated: ``(output * grad_weights).sum().backward()``.
            substitutes: source code of reference helpers that replace the student's
                functions of the same names during the call.

        Returns:
            ``{"outputs": [encode(o) for each output], "grad": ndarray | None,
            "inputs_unchanged": bool}``.
        """
        fn = self._get(name)
        tensors = [to_torch(a) for a in args]
        originals = [t.clone() for t in tensors if isinstance(t, torch.Tensor)]
        if grad_weights is not None:
            tensors[0] = tensors[0].clone().requires_grad_(True)
        with self._substituted(substitutes):
            result = self._traced(fn, *tensors)
        outputs = list(result) if isinstance(result, tuple) else [result]
        grad = None
        if grad_weights is not None:
            out = outputs[0]
            if type(out) is torch.Tensor and out.grad_fn is not None and tuple(out.shape) == grad_weights.shape:
                (out * torch.from_numpy(grad_weights).to(out.dtype)).sum().backward()
                grad = None if tensors[0].grad is None else tensors[0].grad.detach().numpy().copy()
        after = [t for t in tensors if isinstance(t, torch.Tensor)]
        unchanged = all(a.detach().shape == b.shape and torch.equal(a.detach(), b) for a, b in zip(after, originals))
        return {"outputs": [encode(o) for o in outputs], "grad": grad, "inputs_unchanged": bool(unchanged)}

    def encoder_report(self, name: str, x: np.ndarray) -> dict[str, Any]:
        """Build ``name()`` and describe it: layers, parameters and outputs on ``x``.

        Returns:
            ``layers`` (one string per leaf module, e.g. ``"Conv2d(1,64,k=3,s=1,p=1,bias=True)"``),
            ``foreign`` (module classes from forbidden packages), ``n_params``, ``out_eval``
            (eval mode, whole batch), ``out_single`` (eval mode, first item), ``out_train_shape``.
        """
        model = self._traced(self._get(name))
        if not isinstance(model, nn.Module):
            raise TypeError(f"`{name}()` returned a {type(model).__name__}, expected a torch.nn.Module")
        layers, foreign = describe_layers(model, module_packages(self._packages))
        xt = torch.from_numpy(x.copy())
        model.train()
        out_train = self._traced(model, xt)
        model.eval()
        with torch.no_grad():
            out_eval, out_single = self._traced(model, xt), self._traced(model, xt[:1])
        return {
            "layers": layers, "foreign": foreign,
            "n_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
            "out_eval": encode(out_eval), "out_single": encode(out_single),
            "out_train_shape": list(out_train.shape) if isinstance(out_train, torch.Tensor) else None,
        }

    def loss_probe(self, name: str, weight: np.ndarray, bias: np.ndarray, episode: dict[str, np.ndarray], substitutes: str | None = None) -> dict[str, Any]:
        """Call ``name(model, episode)`` with a ``Flatten -> Linear`` encoder of known
        ``weight`` (e, D) and ``bias`` (e,), then ``loss.backward()``.

        Returns:
            ``loss`` and ``accuracy`` (encoded), ``grad_weight`` and ``grad_bias`` (None
            when no gradient reached the encoder).
        """
        from ..data.episodes import Episode

        fn = self._get(name)
        linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight))
            linear.bias.copy_(torch.from_numpy(bias))
        ep = Episode(*(torch.from_numpy(episode[k].copy()) for k in Episode._fields))
        with self._substituted(substitutes):
            result = self._traced(fn, nn.Sequential(nn.Flatten(), linear), ep)
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(f"`{name}` must return a tuple (loss, accuracy), got {type(result).__name__}")
        loss, accuracy = result
        grad_weight = grad_bias = None
        if type(loss) is torch.Tensor and loss.grad_fn is not None and loss.numel() == 1:
            loss.backward()
            if linear.weight.grad is not None:
                grad_weight, grad_bias = linear.weight.grad.numpy().copy(), linear.bias.grad.numpy().copy()
        return {"loss": encode(loss), "accuracy": encode(accuracy), "grad_weight": grad_weight, "grad_bias": grad_bias}

    def file_info(self, filename: str) -> dict[str, Any]:
        """``{"exists": bool, "size": bytes}`` of a file beside the notebook."""
        path = Path(filename)
        return {"exists": path.is_file(), "size": path.stat().st_size if path.is_file() else 0}

    def embed_with_weights(self, name: str, filename: str, images: np.ndarray) -> np.ndarray:
        """Embeddings of ``images`` by ``name()`` loaded with the weights in ``filename``.

        The file is read with ``torch.load(..., weights_only=True)`` (no pickled code) and
        must hold the model's ``state_dict``. Results are cached per class, file and images,
        so the two weights tests embed the images once.

        Args:
            images: (n, 1, 28, 28), uint8 in [0, 255] or float32 in [0, 1].

        Returns:
            float32 array of shape (n, d), computed in eval mode on the CPU.
        """
        cls = self._get(name)
        data = Path(filename).read_bytes()
        key = (id(cls), getattr(cls, "__qualname__", ""), hashlib.sha256(data).hexdigest(), hashlib.sha256(images.tobytes()).hexdigest())
        if key in _EMBED_CACHE:
            return _EMBED_CACHE[key].copy()
        state = torch.load(filename, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise TypeError(f"{filename} must hold a state_dict (a dict of tensors): save it with torch.save(model.state_dict(), path)")
        model = self._traced(cls)
        model.load_state_dict(state)
        model.eval()
        xt = torch.from_numpy(images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32))
        with torch.no_grad():
            parts = [self._traced(model, xt[i : i + 500]) for i in range(0, len(xt), 500)]
        for p in parts:
            if type(p) is not torch.Tensor:
                raise TypeError(f"`{name}` returned a {type(p).__name__}, expected a tensor")
        _EMBED_CACHE.clear()
        _EMBED_CACHE[key] = torch.cat(parts).float().numpy()
        return _EMBED_CACHE[key].copy()
