"""Statements in the lectures and homeworks that a careful reader checks: each test pins one to
its source (the seed guide's three steps, a sign convention, a benchmark's JSON, the run itself).
Numbers a notebook computes are checked by the notebook's own asserts under nbval; these tests
read the committed notebooks and bench/results/*.json, so they are fast."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cells(path: str) -> list[dict]:
    return json.loads((ROOT / path).read_text(encoding="utf-8"))["cells"]


def _cell(path: str, cell_id: str) -> str:
    (cell,) = [c for c in _cells(path) if c.get("id") == cell_id]
    return "".join(cell["source"])


def _bench(name: str) -> dict:
    return json.loads((ROOT / "bench" / "results" / f"{name}.json").read_text())


# ---- lecture 5: the sign convention of Koch's head --------------------------------------------

LECTURE5 = "lectures/05_siamese_networks.ipynb"


def test_lecture_5_states_the_sign_convention_of_the_learned_distance():
    text = _cell(LECTURE5, "34ead70d")
    assert r"write $\alpha_j = -w_j$" in text and r"p = \sigma(\beta - d + e)" in text
    assert "For positive weights" not in text  # the old reading: positive weights would make p grow with the distance
    check = _cell(LECTURE5, "alpha-sign")  # the run splits the learned score into d and e and asserts d separates the pairs
    assert "network.head.weight" in check and "assert rise_d > 2 * max(rise_e.item(), 0)" in check


def test_lecture_5_keeps_bench_arithmetic_in_its_appendix():
    cells = _cells(LECTURE5)
    assert cells[-1].get("id") == "siamese-gap" and "".join(cells[-1]["source"]).startswith("## Measured notes")
    main_text = "".join("".join(c["source"]) for c in cells[:-1] if c["cell_type"] == "markdown")
    for typed in ("6× faster", "35% shorter", "9 points of 20-way", "about 0.05"):
        assert typed not in main_text, f"{typed!r} is bench arithmetic: keep it in Measured notes"


# ---- the MAML homework: question, model answer and measurement agree --------------------------

MAML = "solutions/maml/maml.ipynb"


def test_maml_homework_quotes_the_measured_first_order_gap():
    accuracy = _bench("maml")["accuracy"]
    steps = _bench("maml")["training"]["FOMAML"]["meta_steps"]
    assert steps == _bench("maml")["training"]["MAML"]["meta_steps"]  # equal meta-steps
    fomaml, maml = f"{accuracy['FOMAML 5w1s']['mean']:.1f}%", f"{accuracy['MAML 5w1s']['mean']:.1f}%"
    question, answer = _cell(MAML, "9451269d"), _cell(MAML, "9b5cb37f")
    for text in (question, answer):
        assert fomaml in text and maml in text
    assert f"{steps:,} meta-steps" in question and "zeroing trick" in question
    goals = "".join(_cells(MAML)[0]["source"])
    assert "works almost as well as MAML." not in goals and "why not here" in goals
    assert "not small" in answer and "support features" in answer
    docs = (ROOT / "docs" / "assignments.md").read_text()
    assert "explains why first-order MAML works almost\nas well," not in docs and f"{fomaml} vs {maml}" in docs
