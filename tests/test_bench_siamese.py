"""bench/siamese.py still runs (tiny sizes, results to a temporary folder); its figures are
measured by running the script for real, never asserted here — but lecture 5 must show them as
they are in bench/results/siamese.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_siamese_bench_runs_and_merges_rows(run_bench):
    common = ("--batches", "2", "--episodes", "40", "--test-classes", "45", "--threads", "1")
    run_bench("siamese.py", *common, "--variant", "recipe")
    result = run_bench("siamese.py", *common, "--variant", "size=56+stem=4", "--variant", "alphabets=4+distort=0.5+dropout=0")
    rows = result["rows"]
    assert set(rows) == {"recipe@2", "size=56+stem=4@2", "alphabets=4+distort=0.5+dropout=0@2"}  # the first run's row is kept
    assert rows["size=56+stem=4@2"]["settings"]["size"] == 56 and rows["recipe@2"]["settings"]["stem"] == 0
    for row in rows.values():
        assert row["batches"] == 2 and row["train_cpu_s"] > 0
        assert set(row["accuracy"]) == {"random", "within", "koch"}
        assert all(0 <= a["mean"] <= 100 for a in row["accuracy"].values())
    assert result["paper"]["koch"] == 92.0 and result["machine"]["cores"] >= 1


def test_siamese_bench_rejects_an_unknown_change_before_training(tmp_path):
    script = Path(__file__).resolve().parents[1] / "bench" / "siamese.py"
    done = subprocess.run([sys.executable, str(script), "--variant", "width=128"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "FSL_BENCH_RESULTS": str(tmp_path)}, timeout=120)
    assert done.returncode != 0 and "unknown change 'width=128'" in done.stderr
    assert not (tmp_path / "siamese.json").exists()


def test_lecture_5_shows_the_measured_gap_table():
    """The gap table of lecture 5 is bench/results/siamese.json as `bench/siamese.py --table` prints it."""
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "FSL_BENCH_RESULTS"}  # the committed results
    table = subprocess.run([sys.executable, str(root / "bench" / "siamese.py"), "--table"], capture_output=True, text=True,
                           env=env, check=True, timeout=120).stdout.strip()
    assert table.count("\n") >= 5  # header, rule and the measured rows
    notebook = json.loads((root / "lectures" / "05_siamese_networks.ipynb").read_text())
    (cell,) = [c for c in notebook["cells"] if c.get("id") == "siamese-gap"]
    assert table in "".join(cell["source"]), "lecture 5's gap table differs from bench/results/siamese.json: paste `python bench/siamese.py --table`"
