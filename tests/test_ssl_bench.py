"""bench/ssl_methods.py (results: ssl.json) still runs end to end (tiny sizes; the figures are measured by running it, never asserted)."""

from __future__ import annotations


def test_ssl_bench_runs(run_bench):
    result = run_bench("ssl_methods.py", "--semi-steps", "3", "--simclr-steps", "2", "--byol-steps", "2", "--batch", "16", "--n-eval", "50", "--mu", "1",
                       "--probe-labels", "20,40", "--threads", "1", results="ssl.json")
    semi = result["semi_250_labels"]
    assert {"supervised", "mean_teacher", "fixmatch"} <= set(semi) and semi["best_consistency_method"] in ("mean_teacher", "fixmatch")
    assert all(0 <= semi[m]["accuracy"] <= 100 and semi[m]["steps"] == 3 for m in ("supervised", "mean_teacher", "fixmatch"))
    probe = result["self_linear_probe"]["probe_accuracy"]
    assert set(probe) == {"random_init", "simclr", "byol"} and all(set(p) == {"20", "40"} for p in probe.values())
    assert result["self_linear_probe"]["pretraining"]["byol"]["steps"] == 2
