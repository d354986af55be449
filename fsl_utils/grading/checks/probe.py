"""Probes: the only way hidden tests touch a student's code.

A hidden test never calls student objects directly; it asks a probe for plain data (numpy
arrays, numbers, short strings) computed by the student's code on inputs the test chose, and
compares that data with float64 oracles. So the tests do not depend on how a correct
implementation is written (loops or matrix products, float32 or float64, ...).

One mechanism for every assignment: a probe calls a student function on arrays (:meth:`~Probe.call`)
or runs a kernel-side task of the assignment (:meth:`~Probe.task`, the modules of :mod:`.kernel`),
which builds the models and episodes a function needs and returns plain data.

* :class:`LocalProbe` runs the student's objects in the current interpreter. The source
  notebook's hidden cells use it (``run_hidden_test``), e.g. under nbval.
* :class:`~.remote.RemoteProbe` (what autograding uses) sends each request to the student's
  sandboxed kernel, where a :class:`LocalProbe` answers it: the hidden tests and their
  oracles stay in the grader's process and never enter the student's kernel.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .kernel import kernel_task
from .plain import FORBIDDEN_PACKAGES, compile_helpers, encode, forbidden_functions, forbidden_roots, module_packages, to_torch
from .tampering import tampering


class Probe(Protocol):
    """What hidden tests may ask about a submission (see :class:`LocalProbe`)."""

    def has(self, name: str) -> bool: ...
    def call(self, name: str, *args: Any, grad_weights: np.ndarray | None = None, substitutes: str | None = None) -> dict[str, Any]: ...
    def task(self, assignment: str, name: str, *args: Any, substitutes: str | None = None) -> Any: ...
    def file_info(self, filename: str) -> dict[str, Any]: ...
    def source(self, name: str) -> str | None: ...
    def borrowed(self) -> list[str]: ...
    def forbid(self, packages: Sequence[str]) -> None: ...
    def tampering(self) -> list[str]: ...


class LocalProbe:
    """Runs the student's objects, looked up by name in ``namespace``, in this process.

    Every call is traced (``sys.setprofile``): Python code executed from the forbidden
    packages (:data:`~.plain.FORBIDDEN_PACKAGES`, plus those added by :meth:`forbid`) is recorded
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

    @property
    def forbidden_modules(self) -> tuple[str, ...]:
        """The forbidden entries that name whole packages or modules."""
        return module_packages(self._packages)

    def get(self, name: str) -> Any:
        """The student's object ``name``.

        Raises:
            NameError: with a message for the student, when the notebook does not define it.
        """
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
        """Comparison/reporting functions replaced in this process (:func:`.tampering.tampering`)."""
        return tampering()

    def source(self, name: str) -> str | None:
        """Source code of the student's function or class ``name`` (None if unavailable)."""
        try:
            return inspect.getsource(self.get(name))
        except (OSError, TypeError):
            return None

    def call(self, name: str, *args: Any, grad_weights: np.ndarray | None = None, substitutes: str | None = None) -> dict[str, Any]:
        """Call the student's function ``name`` on ``args`` (arrays become tensors).

        Args:
            name: function name in the namespace.
            *args: numpy arrays (converted to tensors of the same dtype) or numbers.
            grad_weights: if given, the first argument requires grad and the result is
                differentiated: ``(output * grad_weights).sum().backward()``.
            substitutes: source code of reference helpers (kept in the hidden tests) that
                replace the student's functions of the same names during the call.

        Returns:
            ``{"outputs": [encode(o) for each output], "grad": ndarray | None,
            "inputs_unchanged": bool}``.
        """
        fn = self.get(name)
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

    def task(self, assignment: str, name: str, *args: Any, substitutes: str | None = None) -> Any:
        """Run the kernel-side task ``name`` of ``assignment`` (:mod:`.kernel`) on ``args``
        (arrays become tensors), traced like :meth:`call`.

        Args:
            substitutes: as in :meth:`call`, for the whole task.

        Returns:
            The task's plain data (see the task's docstring).
        """
        fn = kernel_task(assignment, name)
        tensors = [to_torch(a) for a in args]
        with self._substituted(substitutes):
            return self._traced(fn, self, *tensors)

    def file_info(self, filename: str) -> dict[str, Any]:
        """``{"exists": bool, "size": bytes}`` of a file beside the notebook."""
        path = Path(filename)
        return {"exists": path.is_file(), "size": path.stat().st_size if path.is_file() else 0}
