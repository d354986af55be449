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
