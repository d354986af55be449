"""Results that notebooks and benchmarks report, collected by ``make course``.

A notebook calls :func:`record_result` for each headline number; the course builder
gathers ``<results dir>/*.json`` and ``bench/results/*.json`` into ``build/results.md``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def results_dir() -> Path:
    """``$FSL_RESULTS_DIR``, else ``build/results`` of the course checkout (else of the working folder)."""
    from ..data.paths import course_checkout

    env = os.environ.get("FSL_RESULTS_DIR")
    if env:
        return Path(env)
    return (course_checkout() or Path.cwd()) / "build" / "results"


def record_result(
    experiment: str,
    metric: str,
    value: float,
    *,
    ci95: float | None = None,
    paper: float | str | None = None,
    protocol: str = "",
    unit: str = "%",
    fast: bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Store one headline number under ``<results dir>/<experiment>.json``.

    Args:
        experiment: file stem, e.g. ``"06_prototypical_and_matching"``.
        metric: what was measured, e.g. ``"ProtoNet 5-way 1-shot"``.
        value: our number.
        ci95: half-width of its 95% confidence interval, if any.
        paper: the paper's number for the same metric, if any.
        protocol: how our protocol differs from the paper's.
        unit: unit of ``value`` (default percent).
        fast: whether it was measured in FAST mode (default: read ``FSL_FAST``).
        **extra: any other JSON-serialisable fields (e.g. ``runtime_s``).

    Returns:
        The stored entry. Re-recording a metric replaces its earlier entry.
    """
    from ..config import is_fast

    entry = {
        "metric": metric,
        "value": float(value),
        "ci95": None if ci95 is None else float(ci95),
        "paper": paper,
        "protocol": protocol,
        "unit": unit,
        "fast": is_fast() if fast is None else fast,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        **extra,
    }
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{experiment}.json"
    entries = json.loads(path.read_text()) if path.is_file() else []
    entries = [e for e in entries if e.get("metric") != metric] + [entry]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=2))
    tmp.replace(path)
    return entry
