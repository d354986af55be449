"""bench/ssl_methods.py (ssl.json) and bench/semi_features.py (ssl_semi.json) still run end to end at
tiny sizes (their figures are measured by running them, never asserted), and lectures 3 and 4
show their committed tables as the scripts print them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ssl_bench_runs_and_merges(run_bench):
    tiny = ("--batch", "16", "--n-eval", "50", "--mu", "1", "--probe-labels", "20,40", "--threads", "1")
    run_bench("ssl_methods.py", *tiny, "--semi-steps", "3", "--simclr-steps", "2", "--byol-steps", "", results="ssl.json")
    result = run_bench("ssl_methods.py", *tiny, "--semi-steps", "4", "--semi-methods", "supervised,mean_teacher,fixmatch",
                       "--simclr-steps", "3", "--byol-steps", "2", "--merge", results="ssl.json")
    semi = result["semi_250_labels"]["rows"]
    assert set(semi) == {"3", "4"} and set(semi["4"]) >= {"supervised", "mean_teacher", "fixmatch"}
    assert all(0 <= semi["4"][m]["accuracy"] <= 100 and semi["4"][m]["steps"] == 4 for m in ("supervised", "mean_teacher", "fixmatch"))
    assert semi["4"]["best_consistency_method"] in ("mean_teacher", "fixmatch")
    probe = result["self_linear_probe"]
    assert set(probe["rows"]) == {"simclr@2", "simclr@3", "byol@2"} and set(probe["random_init"]) == {"20", "40"}
    assert all(set(r["probe_accuracy"]) == {"20", "40"} and r["views"] == "batched" for r in probe["rows"].values())
    assert probe["rows"]["simclr@3"]["temperature"] == 0.2 and probe["rows"]["byol@2"]["images"] == 2 * 16


def test_ssl_bench_refuses_to_merge_other_settings(run_bench):
    tiny = ("--n-eval", "50", "--mu", "1", "--threads", "1", "--only", "semi", "--semi-steps", "2")
    run_bench("ssl_methods.py", *tiny, results="ssl.json")
    with pytest.raises(subprocess.CalledProcessError):
        run_bench("ssl_methods.py", *tiny[:3], "2", *tiny[4:], "--merge", results="ssl.json")


def test_semi_features_bench_runs(run_bench, tmp_path, monkeypatch):
    monkeypatch.setenv("FSL_CACHE_DIR", str(tmp_path / "cache"))
    args = ("--unlabeled", "20", "--labeled-views", "1", "--views", "2", "--n-eval", "30", "--draws", "1", "--input-size", "32")
    result = run_bench("semi_features.py", *args, "--variant", "steps=3", "--variant", "steps=2+head=linear+opt=sgd+lr=0.01",
                       results="ssl_semi.json")
    rows = result["rows"]
    assert set(rows) == {"steps=3", "steps=2+head=linear+opt=sgd+lr=0.01"}
    assert rows["steps=2+head=linear+opt=sgd+lr=0.01"]["recipe"]["head"] == "linear"
    for row in rows.values():
        assert set(row["mean"]) == {"40", "250"}
        assert all(0 <= a <= 100 for m in row["mean"].values() for a in m.values())
    assert result["settings"]["unlabeled"] == 20 and result["feature_cpu_seconds"] >= 0


@pytest.mark.parametrize(("script", "args", "lecture", "cell_id"), [
    ("ssl_methods.py", ("--table", "semi"), "03_semi_supervised", "semi-from-scratch"),
    ("ssl_methods.py", ("--table", "self"), "04_self_supervised", "simclr-doubling"),
    ("semi_features.py", ("--table",), "03_semi_supervised", "semi-features-variants"),
])
def test_lectures_show_the_committed_bench_tables(script, args, lecture, cell_id):
    env = {k: v for k, v in os.environ.items() if k != "FSL_BENCH_RESULTS"}  # the committed results
    table = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True, env=env,
                           check=True, timeout=120).stdout.strip()
    assert table.count("\n") >= 3
    notebook = json.loads((ROOT / "lectures" / f"{lecture}.ipynb").read_text())
    (cell,) = [c for c in notebook["cells"] if c.get("id") == cell_id]
    assert table in "".join(cell["source"]), f"{lecture}'s table {cell_id} differs from bench/results: paste `python bench/{script} {' '.join(args)}`"
