"""Device selection, mixed precision and DataLoader settings in one place.

Notebooks call :func:`get_device` once; library functions take ``device=None`` and
fall back to the model's device; tensors move with ``.to(device)``, never a hard-coded CUDA call.
"""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Any, ContextManager

import torch

_VALID = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(prefer: str | None = None) -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then the CPU.

    ``FSL_DEVICE`` (or ``prefer``) overrides the choice, e.g. ``FSL_DEVICE=cpu`` on a
    GPU machine to reproduce the CPU numbers.

    Args:
        prefer: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``; wins over the env var.

    Returns:
        A ``torch.device``.

    Raises:
        ValueError: if the requested device is unknown or not available here.
    """
    wanted = prefer or os.environ.get("FSL_DEVICE", "").strip()
    if wanted:
        kind = wanted.split(":")[0]
        if kind not in _VALID:
            raise ValueError(
                f"Unknown device {wanted!r} (from {'argument' if prefer else 'FSL_DEVICE'}); "
                f"use one of {', '.join(_VALID)} (optionally 'cuda:<index>')."
            )
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"Device {wanted!r} was requested but CUDA is not available; unset FSL_DEVICE or use 'cpu'.")
        if kind == "mps" and not _mps_available():
            raise ValueError(f"Device {wanted!r} was requested but MPS is not available; unset FSL_DEVICE or use 'cpu'.")
        return torch.device(wanted)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The reduced-precision dtype worth using on ``device``, or None for full precision.

    bf16 on CUDA GPUs that support it (Ampere and newer), fp16 on older CUDA GPUs and on
    MPS, and None on the CPU (CPU autocast rarely speeds up these small convnets).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return None


def autocast(device: torch.device | str, enabled: bool = True) -> ContextManager[Any]:
    """Mixed-precision context for forward passes; a no-op on the CPU.

    Example:
        >>> with autocast(device):
        ...     logits = model(x)
    """
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def grad_scaler(device: torch.device | str) -> torch.amp.GradScaler:
    """A GradScaler that is active only where autocast uses fp16 (bf16 needs none)."""
    device = torch.device(device)
    enabled = autocast_dtype(device) == torch.float16 and device.type == "cuda"
    return torch.amp.GradScaler(device.type if enabled else "cpu", enabled=enabled)


def dataloader_kwargs(device: torch.device | str, num_workers: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``torch.utils.data.DataLoader`` suited to ``device``.

    Pinned memory and background workers only pay off when batches travel to a GPU;
    on the CPU (and in notebooks, where worker processes are fragile) loading stays in
    the main process.

    Args:
        device: where the batches go.
        num_workers: override the number of worker processes.

    Returns:
        A dict with ``pin_memory``, ``num_workers`` and, with workers,
        ``persistent_workers``.
    """
    device = torch.device(device)
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1) if device.type == "cuda" else 0
    kwargs: dict[str, Any] = {"pin_memory": device.type == "cuda", "num_workers": num_workers}
    if num_workers > 0:
        kwargs["persistent_workers"] = True
    return kwargs


def describe_device(device: torch.device | str | None = None) -> str:
    """One line for a notebook's first cell: device, its name, precision and torch version."""
    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        what = f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    elif device.type == "mps":
        what = f"mps (Apple {platform.machine()})"
    else:
        what = f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"
    dtype = autocast_dtype(device)
    precision = f"autocast {str(dtype).removeprefix('torch.')}" if dtype else "float32"
    return f"device: {what}, {precision}, torch {torch.__version__}"
