"""bench/triplet.py still runs (tiny sizes, results to a temporary folder), rejects unknown variants before
training, and lecture 5's measured notes quote its committed results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_triplet_bench_runs_every_mining(run_bench):
    result = run_bench("triplet.py", "--batches", "2", "--episodes", "4", "--pairs", "40", "--test-classes", "25",
                       "--variant", "semi_hard", "--variant", "hard+margin=0.5", "--variant", "all")
    rows = result["rows"]
    assert set(rows) == {"semi_hard@2", "hard+margin=0.5@2", "all@2"}
    assert rows["hard+margin=0.5@2"]["margin"] == 0.5 and rows["semi_hard@2"]["mining"] == "semi_hard"
    for row in rows.values():
        assert abs(sum(row["fractions"].values()) - 1) < 1e-3
        assert 0 <= row["verification"]["auc"] <= 1 and row["one_shot_20way_random"]["episodes"] == 4


def test_triplet_bench_rejects_an_unknown_variant_before_training(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "triplet.py"), "--variant", "easy"], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "FSL_BENCH_RESULTS": str(tmp_path)}, timeout=120)
    assert done.returncode != 0 and "unknown mining 'easy'" in done.stderr
    assert not (tmp_path / "triplet.json").exists()


def test_lecture_5_measured_notes_quote_bench_triplet():
    rows = json.loads((ROOT / "bench" / "results" / "triplet.json").read_text())["rows"]
    notebook = json.loads((ROOT / "lectures" / "05_siamese_networks.ipynb").read_text())
    (notes,) = ["".join(c["source"]) for c in notebook["cells"] if c.get("id") == "siamese-gap"]
    point = notes.split("8. **Mining.**", 1)[1]
    for variant in ("semi_hard@600", "hard@600", "all@600"):
        row = rows[variant]
        one_shot, verification = row["one_shot_20way_random"], row["verification"]
        assert f"| {one_shot['mean']:.1f} ± {one_shot['ci95']:.1f}% | {verification['test']:.1f}% | {verification['auc']:.3f} |" in point, variant
        assert f"{100 * row['fractions']['easy']:.1f}% | {row['train_cpu_s']:.0f} |" in point, variant


def test_one_cycle_schedule_runs_at_every_length():
    """bench/_common.one_cycle (siamese, triplet and metric benches): PyTorch's OneCycleLR divided by
    zero at exactly 10 steps (``triplet.py --batches 10``); from 20 steps on it is the old schedule."""
    import torch

    sys.path.insert(0, str(ROOT / "bench"))
    from _common import one_cycle

    for steps in (2, 3, 5, 10, 11, 19, 20, 100):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        schedule = one_cycle(optimizer, 1e-2, steps)
        lrs = []
        for _ in range(steps):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step()
        assert lrs[-1] < max(lrs) and all(lr > 0 for lr in lrs), (steps, lrs)
        if steps >= 3:  # (2 steps: warm-up already over at the first step, as before)
            assert abs(max(lrs) - 1e-2) < 1e-9 and lrs[0] < max(lrs), (steps, lrs)
    old = torch.optim.lr_scheduler.OneCycleLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), max_lr=1e-2, total_steps=100, pct_start=0.1)
    assert one_cycle(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), 1e-2, 100).state_dict()["_schedule_phases"] == old.state_dict()["_schedule_phases"]
