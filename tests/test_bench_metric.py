"""bench/metric.py still runs (tiny sizes, results to a temporary folder); the figures are
measured by running the script for real, never asserted here."""

from __future__ import annotations


def test_metric_bench_runs(run_bench):
    result = run_bench("metric.py", "--steps", "2", "--episodes", "3", "--test-classes", "25", "--threads", "1")
    assert set(result["methods"]) == {"siamese", "matching", "protonet"}
    for entry in result["methods"].values():
        assert entry["steps"] == 2 and entry["train_cpu_s"] > 0
        assert set(entry["accuracy"]) == {"5w1s", "5w5s", "20w1s", "20w5s"}
        assert all(0 <= a["mean"] <= 100 for a in entry["accuracy"].values())
    assert result["paper"]["protonet"]["20w1s"] == 96.0 and result["machine"]["cores"] >= 1
