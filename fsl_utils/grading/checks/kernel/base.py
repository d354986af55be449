"""What a kernel-side task sees of the submission (:class:`Submission`), and how tasks return data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from ..plain import encode


class Submission(Protocol):
    """The student's notebook as a kernel-side task may use it (a :class:`~..probe.LocalProbe`)."""

    def get(self, name: str) -> Any:
        """The student's object ``name`` (``NameError`` with a message for the student if undefined)."""
        ...

    @property
    def forbidden_modules(self) -> tuple[str, ...]:
        """Packages and modules students must not borrow from (whole modules only)."""
        ...


#: A kernel-side task: ``task(submission, *args)`` with numpy arrays received as tensors; returns plain data.
Task = Callable[..., Any]


def encoded(*values: Any) -> list[dict[str, Any]]:
    """``values`` as a list of :func:`~..plain.encode` d outputs (what most tasks return)."""
    return [encode(v) for v in values]


def tensor_or_nan(value: Any) -> torch.Tensor:
    """``value`` detached if it is a tensor, else a NaN scalar (the check then reports the wrong type)."""
    return value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float("nan"))


def flag(value: bool) -> torch.Tensor:
    """A boolean finding as a 0-d tensor (1.0 or 0.0)."""
    return torch.tensor(float(value))
