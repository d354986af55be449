"""Shared bits of the benchmark scripts: machine description and the results file."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(os.environ.get("FSL_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (with the machine description) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**payload, "machine": machine()}, indent=2) + "\n")
    return path


def previous_rows(name: str, protocol: str, key: str) -> dict[str, Any]:
    """The ``key`` rows of ``bench/results/<name>.json`` for ``--merge`` (empty without a file);
    SystemExit if that file was measured with another ``protocol``."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    if old.get("protocol") != protocol:
        raise SystemExit(f"--merge: {path} was measured with another protocol:\n  {old.get('protocol')}")
    return old[key]


def one_cycle(optimizer: torch.optim.Optimizer, max_lr: float, steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
    """PyTorch's one-cycle schedule over ``steps`` steps with 10 % warm-up; from 3 to 19 steps, a
    warm-up of two steps instead (``OneCycleLR`` divides by zero when its warm-up ends exactly at
    step 0, i.e. at 10 steps: ``triplet.py --batches 10`` crashed). Unchanged from 20 steps on."""
    if steps < 2:
        raise ValueError(f"the one-cycle schedule needs at least 2 steps, got {steps}")
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=steps, pct_start=2 / steps if 3 <= steps < 20 else 0.1)
