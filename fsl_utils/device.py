"""Device selection in one place.

Notebooks call :func:`get_device` once; library functions take ``device=None`` and
fall back to the model's device; tensors move with ``.to(device)``, never a hard-coded CUDA call.
"""

from __future__ import annotations

import os
import platform

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


def describe_device(device: torch.device | str | None = None) -> str:
    """One line for a notebook's first cell: device, its name, precision and torch version.

    Every training loop of the course runs in float32 on every device: its networks are small
    enough that mixed precision would save little and add a GradScaler to each loop."""
    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        what = f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    elif device.type == "mps":
        what = f"mps (Apple {platform.machine()})"
    else:
        what = f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"
    return f"device: {what}, float32, torch {torch.__version__}"
