"""The whole nbgrader flow on a temporary copy of the course, through the real nbgrader
(``fsl_utils.grading.pipeline``, what ``make release`` and ``make grade`` run): generate
the release -> submit the reference, the untouched release and typical wrong
implementations -> autograde (one sandboxed batch, shared with the adversarial tests via
the ``graded_course`` fixture) -> generate_feedback -> export grades.csv.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from fsl_utils.grading.notebook import fill_solutions
from grading import assignment as shared
from grading import cases



ASSIGNMENT = "protonet"
MAX_SCORE = 25.0  # 20 autograded + 5 manual
STUDENTS = ["reference", "untouched_release", "untrained_weights", *cases.MUTANTS]


def hidden_secrets() -> set[str]:
    """Distinctive lines of the hidden tests (hidden regions and hidden_tests.py), all of them."""
    return shared.hidden_secrets(cases.SOURCE, cases.ROOT / "solutions" / ASSIGNMENT / "hidden_tests.py", except_shown=False)


def test_committed_release_is_in_sync(graded_course):
    """Fails when solutions/ changed but `make release` was not run (and committed)."""
    shared.assert_release_in_sync(graded_course["released"], cases.RELEASE, ASSIGNMENT, manifest=False)  # (manifest: below)


def test_release_has_no_hidden_tests_solutions_or_weights(graded_course):
    folder = graded_course["released"].parent
    shared.assert_release_contents(graded_course["released"], hidden_secrets(),
                                   markers=("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "one_hot.T @ embeddings", "run_hidden_test"))
    assert json.loads((folder / "manifest.json").read_text()) == json.loads((cases.RELEASE.parent / "manifest.json").read_text()), "stale manifest: run `make release`"


@pytest.mark.parametrize("student", STUDENTS)
def test_scores_in_grades_csv(graded_course, student):
    row = shared.read_grades(graded_course["root"])[student]
    expected = graded_course["expected"][student]
    assert float(row["max_score"]) == MAX_SCORE
    assert float(row["raw_score"]) == expected, f"{student}: got {row['raw_score']}, expected {expected}"


def test_every_test_cell_scores_as_expected(graded_course):
    """Per cell, not only the sum: each mistake fails exactly the cells cases.py names."""
    shared.assert_failing_cells(graded_course["root"], ASSIGNMENT, {student: failing for student, (_, _, failing) in cases.MUTANTS.items()})


def test_feedback_never_shows_hidden_tests(graded_course):
    pages = shared.feedback_pages(graded_course["root"], ASSIGNMENT)
    not_graded = set(json.loads((graded_course["root"] / "grading" / "not_graded.json").read_text()))
    graded = set(graded_course["expected"]) - not_graded - {"wrong_assignment"}
    assert {p.parent.parent.name for p in pages} >= graded, "every graded submission gets feedback"
    shared.assert_feedback_hides(pages, hidden_secrets(), markers=("Traceback (most recent call last)", "run_hidden_test", "BEGIN HIDDEN TESTS"))
    for page in pages:
        html = page.read_text(errors="replace")
        own = (graded_course["root"] / "grading" / "submitted" / page.parent.parent.name / ASSIGNMENT / "protonet.ipynb").read_bytes()
        if b"hidden_tests.py" not in own:  # (hostile submissions name the file in their own code)
            assert "hidden_tests.py" not in html


def test_feedback_explains_what_failed(graded_course):
    feedback = graded_course["root"] / "grading" / "feedback"
    html = (feedback / "sum_not_mean" / ASSIGNMENT / "protonet.html").read_text()
    assert "sum of each class" in html
    html = (feedback / "untrained_weights" / ASSIGNMENT / "protonet.html").read_text()
    assert "5-way 5-shot" in html and "at least" in html


def test_student_can_validate_the_filled_release(graded_course, tmp_path):
    """The student's view: fill in the release, train (here: the reference weights), validate."""
    answer = "$-\\|z - c_k\\|^2 = 2 c_k^T z - \\|c_k\\|^2 - \\|z\\|^2$; the last term is the same for all classes: w_k = 2 c_k, b_k = -|c_k|^2."
    (tmp_path / "protonet.ipynb").write_text(json.dumps(fill_solutions(graded_course["released"], {**cases.answers(), "linear_classifier_answer": answer})))
    # nbgrader's default of 30 s per cell is too short for a busy machine (a laptop is faster)
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()  # noqa: F821\nc.Execute.timeout = 600\n")
    shutil.copy(cases.WEIGHTS, tmp_path / "protonet.pt")
    out = subprocess.run([sys.executable, "-m", "nbgrader", "validate", "protonet.ipynb"], cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert "Success! Your notebook passes all the tests." in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
