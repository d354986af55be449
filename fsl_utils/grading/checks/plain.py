"""Plain data between the student's code and the checks: encoding student outputs, describing a
model's layers, compiling the reference helpers a check sends, locating the packages students must
not borrow from. Used on both sides (the kernel's :class:`~.probe.LocalProbe` and the checks)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

#: Code a student must not borrow: the package's own few-shot methods and encoders,
#: and easyfsl (installed for a benchmark). An assignment adds its own entries with a tuple
#: ``FORBIDDEN`` in its ``hidden_tests.py`` (see :func:`.hidden.run_check`).
FORBIDDEN_PACKAGES = ("fsl_utils.methods", "fsl_utils.encoders.conv4", "fsl_utils.encoders.imagenet", "easyfsl")


def _origin(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    return None if spec is None or spec.origin is None else Path(spec.origin)


def forbidden_roots(packages: Iterable[str] = FORBIDDEN_PACKAGES) -> tuple[str, ...]:
    """Source folders (or files) of the installed ``packages`` (dotted names of packages or
    modules; ``"module:function"`` entries are :func:`forbidden_functions`)."""
    roots = []
    for name in packages:
        origin = None if ":" in name else _origin(name)
        if origin is not None:
            roots.append(str(origin.parent if origin.name == "__init__.py" else origin))
    return tuple(roots)


def forbidden_functions(packages: Iterable[str] = FORBIDDEN_PACKAGES) -> frozenset[tuple[str, str]]:
    """``(source file, function name)`` of the ``"module:function"`` entries of ``packages``
    (one function of a module whose other functions students may use, e.g.
    ``"fsl_utils.ssl.evaluation:linear_probe"`` but not ``embed``)."""
    found = set()
    for entry in packages:
        module, _, function = entry.partition(":")
        origin = _origin(module) if function else None
        if origin is not None:
            found.add((str(origin), function))
    return frozenset(found)


def module_packages(packages: Iterable[str]) -> tuple[str, ...]:
    """The entries of ``packages`` that name whole packages or modules (not ``"module:function"``)."""
    return tuple(p for p in packages if ":" not in p)


def encode(value: Any) -> dict[str, Any]:
    """One output of student code as plain data.

    Returns:
        ``{"kind": "tensor", "array": ndarray, "dtype": "float32", "grad_fn": bool}`` for a
        ``torch.Tensor`` (exactly that type), ``{"kind": "number", "value": float}`` for a
        Python or NumPy number, otherwise ``{"kind": "other", "type": <type name>}``.
    """
    if type(value) is torch.Tensor or type(value) is nn.Parameter:
        array = value.detach().cpu()
        array = array.float() if array.dtype == torch.bfloat16 else array
        return {"kind": "tensor", "array": array.numpy().copy(), "dtype": str(value.dtype).removeprefix("torch."), "grad_fn": value.grad_fn is not None}
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return {"kind": "number", "value": float(value)}
    return {"kind": "other", "type": type(value).__name__}


def as_number(out: dict[str, Any]) -> float | None:
    """The number an :func:`encode`-d output holds (a number or a one-element tensor), else None."""
    if out["kind"] == "number":
        return out["value"]
    if out["kind"] == "tensor" and out["array"].size == 1:
        return float(out["array"].reshape(()))
    return None


def to_torch(value: Any) -> Any:
    """A numpy array as a tensor of the same dtype (a copy); anything else unchanged."""
    return torch.from_numpy(value.copy()) if isinstance(value, np.ndarray) else value


def compile_helpers(source: str | None) -> dict[str, Callable[..., Any]]:
    """Functions defined by ``source`` (reference helpers sent by a hidden test)."""
    if not source:
        return {}
    scope: dict[str, Any] = {"torch": torch, "F": torch.nn.functional}
    given = set(scope)
    exec(compile(source, "<grader helpers>", "exec"), scope)  # noqa: S102 (grader's own code)
    return {k: v for k, v in scope.items() if k not in given and callable(v)}


def describe_layers(model: nn.Module, forbidden: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Leaf modules of ``model`` as strings, and module classes defined in ``forbidden`` packages.

    Returns:
        ``(layers, foreign)``: e.g. ``["Conv2d(1,64,k=3,s=1,p=1,bias=True)", "BatchNorm2d(64)",
        "ReLU", "MaxPool2d(2)", ...]`` and ``["fsl_utils.encoders.conv4.Conv4", ...]``.
    """
    layers, foreign = [], []
    for module in model.modules():
        owner = type(module).__module__
        if forbidden and owner.startswith(forbidden):
            foreign.append(f"{owner}.{type(module).__name__}")
        if list(module.children()):
            continue
        if isinstance(module, nn.Conv2d):
            padding = module.padding[0] if isinstance(module.padding, tuple) else module.padding
            layers.append(
                f"Conv2d({module.in_channels},{module.out_channels},k={module.kernel_size[0]},"
                f"s={module.stride[0]},p={padding},bias={module.bias is not None})"
            )
        elif isinstance(module, nn.BatchNorm2d):
            layers.append(f"BatchNorm2d({module.num_features})")
        elif isinstance(module, nn.MaxPool2d):
            k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            layers.append(f"MaxPool2d({k})")
        else:
            layers.append(type(module).__name__)
    return layers, foreign
