"""The benchmark scripts still run (tiny sizes, results to a temporary folder).

The figures themselves are measured by running bench/*.py, never asserted here."""

from __future__ import annotations



def test_episodes_bench_runs(run_bench):
    result = run_bench("episodes.py", "--episodes", "5")
    assert result["fsl_utils_episodes_per_s"] > 0 and set(result["easyfsl_episodes_per_s"]) == {"0_workers", "2_workers"}
    assert result["ratio"] > 0 and result["machine"]["cores"] >= 1
