"""Manual grading in a real browser, by the route docs/instructors.md gives: JupyterLab served
from the course directory, its Nbgrader menu -> Formgrader -> Manual Grading -> protonet ->
protonet -> the student's submission; a score and a comment for the written ProtoNet answer
(``linear_classifier_answer``, 5 points) typed into the formgrader. Then ``make feedback``
(no autograding) must put the score into grades.csv and the comment into that student's
feedback, and leave the other student's alone.

Runs on a copy of two students of the session's graded batch (tests/grading/term.py), in
headless Debian Chromium driven by Playwright (as tests/test_browser.py); screenshots in
build/browser/formgrader_*.png. Without Chromium or playwright the test skips locally with
the reason and FAILS when ``CI`` is set.
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path


from browser.lab import chromium_page, jupyter_lab, require_browser, wait_for

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "browser"
SCORE, COMMENT = 4, "Right idea: w_k = 2 c_k. The bias b_k = -|c_k|^2 is missing (-1)."
STUDENT, OTHER = "reference", "sum_not_mean"


from grading import term


def _manual_grade(root: Path, student: str) -> tuple[float | None, str | None]:
    """(manual score, manual comment) of ``student``'s written answer in the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}", "fsl-course") as gb:
        nb = gb.find_submission_notebook(term.ASSIGNMENT, term.ASSIGNMENT, student)
        grade = next(g for g in nb.grades if g.name == "linear_classifier_answer")
        comment = next(c for c in nb.comments if c.name == "linear_classifier_answer")
        return grade.manual_score, comment.manual_comment


def _grade_in_formgrader(page, lab) -> None:
    """Nbgrader menu -> Formgrader -> Manual Grading -> protonet -> protonet -> STUDENT: score + comment."""
    page.goto(f"http://127.0.0.1:{lab.port}/lab?token={lab.token}")
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    page.locator(".lm-Menu-itemLabel").filter(has_text=re.compile(r"^Formgrader$")).click()
    frame = page.frame_locator("iframe")
    frame.get_by_role("link", name="Manual Grading").click()
    # The Manual Grading list, the assignment's notebook list and the notebook's submissions all hold a
    # link named "protonet": before each click, wait for the page's breadcrumb (1, 2, then 3 items),
    # or under load a click lands on the page before.
    from playwright.sync_api import expect

    crumbs = frame.locator("ol.breadcrumb > li")
    expect(crumbs).to_have_text(["Manual Grading"], timeout=60_000)  # (Manage Assignments' has "Assignments")
    for count in (2, 3):
        frame.locator("td a", has_text=re.compile(rf"^{term.ASSIGNMENT}$")).click()  # the assignment, then its notebook
        expect(crumbs).to_have_count(count, timeout=60_000)
    row = frame.locator("tr", has=frame.locator("a.name-shown", has_text=re.compile(rf"^{STUDENT}$")))
    row.locator(".glyphicon-eye-open").click()  # names are hidden by default
    row.locator("a.name-shown").click()
    score = frame.locator("input#linear_classifier_answer")
    score.wait_for(timeout=60_000)
    # The page fills its inputs from the gradebook after loading: typing earlier gets overwritten.
    grader = wait_for(lambda: next((f for f in page.frames if "/formgrader/submissions/" in f.url), None), 60, "the submission's page", interval=0.25)
    grader.wait_for_function("() => window.formgrader && formgrader.grades && formgrader.grades.loaded && formgrader.comments && formgrader.comments.loaded",
                             timeout=60_000)
    score.fill(str(SCORE))
    score.press("Tab")  # the formgrader saves on change
    comment = frame.locator("textarea#linear_classifier_answer-comment")
    comment.fill(COMMENT)
    comment.press("Tab")
    comment.scroll_into_view_if_needed()


def test_manual_grade_in_the_formgrader_reaches_grades_and_feedback(graded_course, tmp_path):
    require_browser("formgrader test")
    root = term.copy_graded(graded_course["root"], tmp_path / "course", [STUDENT, OTHER])
    assert _manual_grade(root, STUDENT) == (None, None)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("formgrader_*.png"):
        old.unlink()
    start = time.perf_counter()
    with jupyter_lab(root) as lab, chromium_page() as page:
        page.set_default_timeout(60_000)
        try:
            _grade_in_formgrader(page, lab)
            wait_for(lambda: _manual_grade(root, STUDENT) == (SCORE, COMMENT), 30, "the formgrader to save the score and the comment", interval=0.25)
            page.screenshot(path=str(SHOTS / "formgrader_manual_grade.png"))
        except Exception:
            page.screenshot(path=str(SHOTS / "formgrader_failure.png"), full_page=True)
            print(f"screenshot of the failure: {SHOTS / 'formgrader_failure.png'}; JupyterLab log: {lab.log}")
            raise
    print(f"formgrader in the browser: {time.perf_counter() - start:.0f} s")
    assert _manual_grade(root, OTHER) == (None, None), "only the graded student's answer has a manual grade"

    autograded = root / "grading" / "autograded" / STUDENT / term.ASSIGNMENT / "protonet.ipynb"
    before = autograded.stat().st_mtime_ns
    term.make(root, "feedback", ASSIGNMENT=term.ASSIGNMENT)
    assert autograded.stat().st_mtime_ns == before, "make feedback must not autograde"
    with open(root / "grading" / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert float(rows[STUDENT]["raw_score"]) == graded_course["expected"][STUDENT] + SCORE
    assert float(rows[OTHER]["raw_score"]) == graded_course["expected"][OTHER]
    html = (root / "grading" / "feedback" / STUDENT / term.ASSIGNMENT / "protonet.html").read_text()
    assert "b_k = -|c_k|^2 is missing" in html, "the formgrader's comment is in the student's feedback"
    assert f"(Score: {float(SCORE)} / 5.0)" in html, "the manual score is in the student's feedback"
    other = (root / "grading" / "feedback" / OTHER / term.ASSIGNMENT / "protonet.html").read_text()
    assert "b_k = -|c_k|^2 is missing" not in other
