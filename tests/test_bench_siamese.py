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
    result = run_bench("siamese.py", *common, "--variant", "size=56+stem=4+width=32", "--variant", "alphabets=4+distort=0.5+dropout=0",
                       "--variant", "pools=2+fc=64+wd=0.01+drop2d=0.1")
    rows = result["rows"]
    assert set(rows) == {"recipe@2", "size=56+stem=4+width=32@2", "alphabets=4+distort=0.5+dropout=0@2",
                         "pools=2+fc=64+wd=0.01+drop2d=0.1@2"}  # the first run's row is kept
    stem = rows["size=56+stem=4+width=32@2"]["settings"]
    assert stem["size"] == 56 and stem["width"] == 32 and rows["recipe@2"]["settings"]["stem"] == 0
    assert rows["pools=2+fc=64+wd=0.01+drop2d=0.1@2"]["settings"] | {"pools": 3, "fc": 0, "wd": 0.0, "drop2d": 0.0} == rows["recipe@2"]["settings"]
    for row in rows.values():
        assert row["batches"] == 2 and row["train_cpu_s"] > 0 and row["score_matrix"] == "cdist"
        assert set(row["accuracy"]) == {"random", "within", "koch"}
        assert all(0 <= a["mean"] <= 100 for a in row["accuracy"].values())
    assert result["paper"] == {"koch": 92.0, "random": 88.0} and result["machine"]["cores"] >= 1


def test_siamese_bench_rejects_an_unknown_change_before_training(tmp_path):
    script = Path(__file__).resolve().parents[1] / "bench" / "siamese.py"
    done = subprocess.run([sys.executable, str(script), "--variant", "depth=5"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "FSL_BENCH_RESULTS": str(tmp_path)}, timeout=120)
    assert done.returncode != 0 and "unknown change 'depth=5'" in done.stderr
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


def test_siamese_bench_variants_build_the_networks_they_name(monkeypatch):
    """Each knob changes the twin as its docstring says (feature count, where the dropouts sit)."""
    import importlib.util

    from torch import nn

    bench = Path(__file__).resolve().parents[1] / "bench"
    monkeypatch.syspath_prepend(str(bench))
    spec = importlib.util.spec_from_file_location("bench_siamese", bench / "siamese.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def built(variant):
        encoder = module.twin_encoder(module.parse_variant(variant))
        features = module.embedding_size(encoder, 28)
        assert encoder.training  # left ready to train
        return encoder, features, [type(m) for m in encoder.modules()]

    _, features, kinds = built("recipe")
    assert features == 576 and kinds.count(nn.Dropout) == 1 and kinds.count(nn.MaxPool2d) == 3
    _, features, kinds = built("pools=2")
    assert features == 64 * 7 * 7 and kinds.count(nn.MaxPool2d) == 2
    _, features, kinds = built("drop2d=0.1+dropout=0")
    assert features == 576 and kinds.count(nn.Dropout2d) == 4 and nn.Dropout not in kinds
    encoder, features, kinds = built("fc=32")
    assert features == 32 and isinstance(encoder[-1], nn.Sigmoid) and isinstance(encoder[-2], nn.Linear)
    assert encoder[-2].in_features == 576
    encoder, features, kinds = built("width=96")
    assert features == 96 * 3 * 3 and encoder[0][0][0].out_channels == 96 and encoder[0][3][0].in_channels == 96
    assert module.embedding_size(module.twin_encoder(module.parse_variant("width=96+size=56+stem=4")), 56) == 96 * 3 * 3
    assert module.variant_name(module.parse_variant("wd=0.05+pools=2")) == "pools=2+wd=0.05"
