"""Checks of the protonet pipeline that the other assignments do not share (the common ones are
tests/test_grading_pipeline.py): feedback pages never name hidden_tests.py (save a hostile
submission's own code), and a student can fill in the release and validate it with nbgrader.
The protonet batch is the session's ``graded_course`` (tests/grading/course.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from fsl_utils.grading.notebook import fill_solutions
from grading import assignment as shared
from grading import cases

ASSIGNMENT = "protonet"


def test_feedback_never_names_the_hidden_tests_file(graded_course):
    for page in shared.feedback_pages(graded_course["root"], ASSIGNMENT):
        html = page.read_text(errors="replace")
        own = (graded_course["root"] / "grading" / "submitted" / page.parent.parent.name / ASSIGNMENT / "protonet.ipynb").read_bytes()
        if b"hidden_tests.py" not in own:  # (hostile submissions name the file in their own code)
            assert "hidden_tests.py" not in html, f"{page.parent.parent.name}: hidden_tests.py in feedback"


def test_student_can_validate_the_filled_release(graded_course, tmp_path):
    """The student's view: fill in the release, train (here: the reference weights), validate."""
    answer = "$-\\|z - c_k\\|^2 = 2 c_k^T z - \\|c_k\\|^2 - \\|z\\|^2$; the last term is the same for all classes: w_k = 2 c_k, b_k = -|c_k|^2."
    (tmp_path / "protonet.ipynb").write_text(json.dumps(fill_solutions(graded_course["released"], {**cases.answers(), "linear_classifier_answer": answer})))
    # nbgrader's default of 30 s per cell is too short for a busy machine (a laptop is faster)
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()  # noqa: F821\nc.Execute.timeout = 600\n")
    shutil.copy(cases.WEIGHTS, tmp_path / "protonet.pt")
    out = subprocess.run([sys.executable, "-m", "nbgrader", "validate", "protonet.ipynb"], cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert "Success! Your notebook passes all the tests." in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
