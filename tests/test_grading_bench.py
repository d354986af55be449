"""Smoke tests of the homework's benchmarks with tiny arguments (the figures come from
running the scripts for real; bench/results/*.json)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest


def test_protonet_bench_smoke(run_bench):
    out = run_bench("protonet.py", "--cpu-budget", "3", "--way", "5", "--episodes", "20", "--warmup", "1", timeout=1800)
    assert out["train_steps"] >= 1 and out["cpu_budget_seconds"] == 3
    for setting in ("5w1s", "5w5s", "20w1s", "20w5s"):
        acc = out["accuracy"][setting]
        assert 0 <= acc["mean"] <= 100 and acc["episodes"] == 20 and acc["paper"] > 95
    assert set(out["hidden_test_episodes"]) == {"5w5s", "5w1s", "floors"}


def test_autograde_bench_smoke(run_bench):
    out = run_bench("autograde.py", "--sizes", "1", "--jobs", "1", timeout=1800)
    (run,) = out["runs"]
    assert run["submissions"] == 1 and run["all_full_marks"], run
    assert run["wall_seconds"] > 0 and run["cpu_seconds"] > 0


def test_simclr_weights_bench_smoke(run_bench, tmp_path):
    from fsl_utils.grading import load_hidden_tests

    hidden = load_hidden_tests("simclr", Path(__file__).resolve().parents[1])
    floors = {"10_per_class": hidden.FLOOR_10, "25_per_class": hidden.FLOOR_25}
    tiny = ("--steps", "2", "--batch", "16")
    run_bench("simclr_weights.py", "--seeds", "0", *tiny, timeout=1800)
    out = run_bench("simclr_weights.py", "--seeds", "", "--random-seeds", "7", *tiny, "--merge", timeout=1800)
    assert set(out["seeds"]) == {"0", "7"}  # --merge keeps the first run's seed; 7 is a random init only
    assert set(out["seeds"]["7"]) == {"random_init"}
    with pytest.raises(subprocess.CalledProcessError):  # another protocol (steps) is not merged
        run_bench("simclr_weights.py", "--seeds", "2", "--steps", "3", "--batch", "16", "--merge", timeout=1800)
    row = out["seeds"]["0"]
    assert out["steps"] == 2 and row["train_cpu_s"] > 0 and out["floors"] == floors
    for kind in ("trained", "random_init"):
        assert set(row[kind]) == {"10_per_class", "25_per_class"} and all(0 <= a <= 100 for a in row[kind].values())
    for k, floor in floors.items():  # margins over every seed: the lowest trained one, the highest random init
        m = out["margins"]["seeds"][k]
        assert m["trained_above"] == round(out["seeds"]["0"]["trained"][k] - floor, 2)
        assert m["random_below"] == round(floor - max(r["random_init"][k] for r in out["seeds"].values()), 2)
    # --update-floors re-computes the margins of the file in place (here: against the same floors)
    (tmp_path / "simclr_weights.json").write_text(json.dumps({**out, "margins": {}}))
    again = run_bench("simclr_weights.py", "--update-floors", timeout=600)
    assert again["margins"] == out["margins"] and again["machine"] == out["machine"]
