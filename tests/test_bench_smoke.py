"""The benchmark scripts still run (tiny sizes, results to a temporary folder).

The figures themselves are measured by running bench/*.py, never asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, tmp_path: Path, *args: str) -> dict:
    env = {**os.environ, "FSL_BENCH_RESULTS": str(tmp_path)}
    subprocess.run([sys.executable, str(BENCH / script), *args], check=True, env=env, cwd=tmp_path, timeout=600)
    return json.loads((tmp_path / script.replace(".py", ".json")).read_text())


def test_episodes_bench_runs(tmp_path):
    result = run_bench("episodes.py", tmp_path, "--episodes", "5")
    assert result["fsl_utils_episodes_per_s"] > 0 and set(result["easyfsl_episodes_per_s"]) == {"0_workers", "2_workers"}
    assert result["ratio"] > 0 and result["machine"]["cores"] >= 1
