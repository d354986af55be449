"""What a block of code costs: wall time, CPU time and peak memory (:class:`measure`).

Used by the leaderboard (lecture 9) to report each method's training cost on this machine.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """Current resident memory of this process (Linux ``/proc/self/statm``), else None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _release_free_memory() -> None:
    """Ask glibc to return freed heap to the OS, so a later peak is measured from a low baseline."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass(frozen=True)
class Cost:
    """What building (training) a method cost.

    Attributes:
        wall_seconds: elapsed time.
        cpu_seconds: process CPU time over all threads (``time.process_time``); on a
            shared machine this is the fairer measure, wall time on a quiet one is about
            ``cpu_seconds / threads``.
        peak_mb: peak memory above the level at the start, in MiB: on CUDA the peak of
            ``torch.cuda.max_memory_allocated``; on the CPU the peak resident-memory growth
            of the process, sampled every few milliseconds (NaN where ``/proc`` is missing).
    """

    wall_seconds: float
    cpu_seconds: float
    peak_mb: float


class measure:
    """Context manager measuring a block's :class:`Cost` (available as ``.cost`` afterwards).

    Args:
        device: the device the block computes on (CUDA: allocator peak; otherwise RSS).
        interval: seconds between resident-memory samples (CPU only).

    Example:
        >>> with measure() as m:
        ...     model = train_something()
        >>> m.cost.cpu_seconds, m.cost.peak_mb
    """

    def __init__(self, device: torch.device | str | None = None, interval: float = 0.005) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.interval = interval
        self.cost: Cost | None = None
        self._stop = threading.Event()
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            now = resident_bytes()
            if now is not None and now > self._peak:
                self._peak = now

    def __enter__(self) -> "measure":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            _release_free_memory()
            self._base = resident_bytes() or 0
            self._peak = self._base
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        else:
            now = resident_bytes()
            self._stop.set()
            self._thread.join()
            peak = float("nan") if now is None else (max(self._peak, now) - self._base) / 2**20
        self.cost = Cost(time.perf_counter() - self._wall, time.process_time() - self._cpu, max(peak, 0.0))
