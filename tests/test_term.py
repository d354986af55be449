"""A term's instructor commands after the first grading run, on a copy of two students of the
session's graded batch (tests/grading/term.py), run as docs/instructors.md gives them:

``make roster`` and ``make deadlines`` (nbgrader's importers, after checks) -> a manual grade
(entered here through nbgrader's gradebook API, as the formgrader's API does; the browser
test enters one through the formgrader itself) -> ``make feedback`` -> an LMS archive
(Blackboard-style file names, one submission 34 hours late, one on time in the LMS's local
time) collected with ``nbgrader zip_collect`` -> ``make grade``, which must autograde only
the two new submissions, keep the manual grade, put names and emails into grades.csv and
apply the late policy (10% of the maximum per started day after 15 minutes' grace).

The checks of the CSV files, the late penalty, the time zones of LMS time stamps and the
submission fingerprints are tested on their own first (no grading).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fsl_utils.grading.incremental import record_autograded, students_to_autograde, submission_fingerprint
from fsl_utils.grading.late import LatePenalty, LmsFileNames
from fsl_utils.grading.roster import CsvError, check_deadlines, check_roster


from grading import cases, term
ASSIGNMENT = term.ASSIGNMENT
ROSTER = """id,first_name,last_name,email,section
reference,Ada,Lovelace,ada@example.org,A
sum_not_mean,Alan,Turing,alan@example.org,B
latecomer,Grace,Hopper,grace@example.org,A
ontime,Edsger,Dijkstra,edsger@example.org,B
absent,Barbara,Liskov,barbara@example.org,A
"""
DEADLINES = "name,duedate\nprotonet,2026-03-02 23:59:00 Europe/Helsinki\n"
#: Blackboard-style names: <column>_<student>_attempt_<local time>_<file>, plus its receipt (.txt)
LMS_FILES = {"latecomer": "2026-03-04-10-00-00", "ontime": "2026-03-02-23-50-00"}  # Helsinki time: 34 h late / 9 min early
MANUAL_SCORE, MANUAL_COMMENT = 3.5, "The bias term is missing."


# -- the checks, without grading -----------------------------------------------------------------
def _write(tmp_path: Path, name: str, text: str, bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_roster_check_accepts_an_excel_csv_and_names_each_problem(tmp_path):
    assert check_roster(_write(tmp_path, "ok.csv", ROSTER, bom=True)) == ["reference", "sum_not_mean", "latecomer", "ontime", "absent"]
    problems = {
        "Student ID,email\nalice,a@x.org\n": "no column 'id'",
        "id,email\nalice,a@x.org\nalice,b@x.org\n": "line 3: student id 'alice' again (first on line 2)",
        "id,email\nAlice Liddell,a@x.org\n": "line 2: student id 'Alice Liddell' is not a login name",
        "id,email\nalice+1,a@x.org\n": "is not a login name",
        "id,email\n": "no rows",
    }
    for text, message in problems.items():
        with pytest.raises(CsvError, match=None) as err:
            check_roster(_write(tmp_path, "bad.csv", text))
        assert message in str(err.value), str(err.value)
    with pytest.raises(CsvError, match="no such file"):
        check_roster(tmp_path / "missing.csv")
    (tmp_path / "latin1.csv").write_bytes("id,last_name\nalice,Mäki\n".encode("latin-1"))
    with pytest.raises(CsvError, match="not UTF-8"):
        check_roster(tmp_path / "latin1.csv")


def test_deadline_check_requires_a_time_zone_and_a_known_assignment(tmp_path):
    root = term.ROOT
    assert check_deadlines(_write(tmp_path, "ok.csv", DEADLINES), root) == {"protonet": "2026-03-02 21:59:00 UTC"}
    assert check_deadlines(_write(tmp_path, "ok2.csv", "name,duedate\nprotonet,2026-03-02T23:59:00+02:00\n"), root) == {"protonet": "2026-03-02 21:59:00 UTC"}
    problems = {
        "name,duedate\nprotonet,2026-03-02 23:59:00\n": "no time zone",
        "name,duedate\nprotonet,2026-03-02 23:59:00 Mars/Olympus\n": "no time zone",
        "name,duedate\nprotonet,next friday\n": "due date 'next friday'",
        "name,duedate\nprotonets,2026-03-02 23:59:00 UTC\n": "no assignment 'protonets'",
        "assignment,duedate\nprotonet,2026-03-02 23:59:00 UTC\n": "no column 'name'",
    }
    for text, message in problems.items():
        with pytest.raises(CsvError) as err:
            check_deadlines(_write(tmp_path, "bad.csv", text), root)
        assert message in str(err.value), str(err.value)


def test_late_penalty_per_started_day_after_the_grace_period():
    plugin = LatePenalty(percent_per_day=10, grace_minutes=15)
    hour = 3600
    assert plugin.penalty(0, 25) == 0
    assert plugin.penalty(14 * 60, 25) == 0  # within the grace period
    assert plugin.penalty(16 * 60, 25) == 2.5  # one started day
    assert plugin.penalty(24 * hour, 25) == 2.5
    assert plugin.penalty(24 * hour + 1, 25) == 5.0
    assert plugin.penalty(34 * hour, 25) == 5.0
    assert plugin.penalty(30 * 24 * hour, 25) == 25.0  # never more than everything


def test_lms_time_stamps_are_read_in_the_lms_time_zone():
    collector = LmsFileNames(named_regexp=r".+/[^/]+_(?P<student_id>[^/_]+)_attempt_(?P<timestamp>[0-9-]+)_(?P<file_id>[^/]+)$",
                             valid_ext=[".ipynb", ".pt"], timezone="Europe/Helsinki")
    info = collector.collect("/x/ProtoNet homework_alice_attempt_2026-03-02-23-50-00_protonet.ipynb")
    assert info["student_id"] == "alice" and info["file_id"] == "protonet.ipynb"
    from nbgrader.utils import parse_utc

    assert str(parse_utc(info["timestamp"])) == "2026-03-02 21:50:00"  # EET = UTC+2
    assert collector.collect("/x/ProtoNet homework_alice_attempt_2026-03-02-23-50-00.txt") is None  # the LMS's receipt
    with pytest.raises(ValueError, match="not a time zone"):
        LmsFileNames(named_regexp=collector.named_regexp, timezone="Helsinki").collect("/x/P_a_attempt_2026-03-02-23-50-00_p.ipynb")


def test_only_new_or_changed_submissions_need_autograding(tmp_path):
    root = tmp_path
    for student in ("same", "changed", "new", "never_recorded"):
        folder = root / "grading" / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / "protonet.ipynb").write_text(f"{{}} {student}")
        if student != "new":
            (root / "grading" / "autograded" / student / ASSIGNMENT).mkdir(parents=True)
    record_autograded(root, ASSIGNMENT, ["same", "changed"])
    (root / "grading" / "submitted" / "changed" / ASSIGNMENT / "protonet.pt").write_bytes(b"weights")
    students = ["same", "changed", "new", "never_recorded"]
    assert students_to_autograde(root, ASSIGNMENT, students) == ["changed", "new", "never_recorded"]
    assert students_to_autograde(root, ASSIGNMENT, students, force=True) == students
    # a symlink counts by its target text and is never followed
    folder = root / "grading" / "submitted" / "same" / ASSIGNMENT
    before = submission_fingerprint(folder)
    (folder / "link").symlink_to("/etc")
    assert submission_fingerprint(folder) != before
    (root / "grading" / "autograded_submissions.json").write_text("{not json")
    with pytest.raises(ValueError, match="delete it"):
        students_to_autograde(root, ASSIGNMENT, students)


# -- the term, on a copy of the graded batch ----------------------------------------------------
def _grades(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "grading" / "grades.csv", newline="") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


def _written_answer(root: Path, student: str):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}", "fsl-course") as gb:
        nb = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student)
        grade = next(g for g in nb.grades if g.name == "linear_classifier_answer")
        comment = next(c for c in nb.comments if c.name == "linear_classifier_answer")
        return grade.manual_score, grade.needs_manual_grade, comment.manual_comment


def _enter_manual_grade(root: Path, student: str) -> None:
    """What the formgrader's API does when a grader types a score and a comment."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}", "fsl-course") as gb:
        nb = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student)
        grade = next(g for g in nb.grades if g.name == "linear_classifier_answer")
        grade.manual_score, grade.needs_manual_grade = MANUAL_SCORE, False
        next(c for c in nb.comments if c.name == "linear_classifier_answer").manual_comment = MANUAL_COMMENT
        gb.db.commit()


def _lms_archive(root: Path) -> Path:
    archive = root / "grading" / "downloaded" / ASSIGNMENT / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "gradebook_ProtoNet.zip", "w") as z:
        for student, when in LMS_FILES.items():
            prefix = f"ProtoNet homework_{student}_attempt_{when}"
            z.write(cases.SOURCE, f"{prefix}_protonet.ipynb")
            z.write(cases.WEIGHTS, f"{prefix}_protonet.pt")
            z.writestr(f"{prefix}.txt", f"Name: {student}\nAssignment: ProtoNet homework\n")
    return archive


@pytest.fixture(scope="module")
def term_course(graded_course, tmp_path_factory):
    """The copy after roster, deadlines, a manual grade, make feedback, zip_collect and make grade;
    returns what each step left behind."""
    root = term.copy_graded(graded_course["root"], tmp_path_factory.mktemp("term") / "course", ["reference", "sum_not_mean"])
    files = tmp_path_factory.mktemp("term_files")
    out: dict = {"root": root, "expected": graded_course["expected"]}
    out["roster"] = term.make(root, "roster", FILE=str(_write(files, "students.csv", ROSTER, bom=True)))
    out["deadlines"] = term.make(root, "deadlines", FILE=str(_write(files, "deadlines.csv", DEADLINES)))
    _enter_manual_grade(root, "reference")
    term.make(root, "feedback", ASSIGNMENT=ASSIGNMENT)
    out["after_feedback"] = (_grades(root), _written_answer(root, "reference"))
    autograded = {s: (root / "grading" / "autograded" / s / ASSIGNMENT / "protonet.ipynb").stat().st_mtime_ns for s in ("reference", "sum_not_mean")}
    out["record_before"] = json.loads((root / "grading" / "autograded_submissions.json").read_text())[ASSIGNMENT]
    _lms_archive(root)
    out["zip_collect"] = subprocess.run([str(Path(sys.prefix) / "bin" / "nbgrader"), "zip_collect", ASSIGNMENT], cwd=root,
                                        capture_output=True, text=True, timeout=300)
    assert out["zip_collect"].returncode == 0, out["zip_collect"].stderr[-3000:]
    out["grade"] = term.make(root, "grade", ASSIGNMENT=ASSIGNMENT, JOBS="2")
    out["regraded"] = [s for s, t in autograded.items() if (root / "grading" / "autograded" / s / ASSIGNMENT / "protonet.ipynb").stat().st_mtime_ns != t]
    out["grades"] = _grades(root)
    return out


def test_make_roster_and_deadlines_report_what_they_imported(term_course):
    assert "roster: 5 student(s) imported" in term_course["roster"].stdout
    assert "columns section are not nbgrader's and are ignored" in term_course["roster"].stderr
    assert "deadline: protonet due 2026-03-02 21:59:00 UTC" in term_course["deadlines"].stdout


def test_bad_roster_stops_make_with_the_reason(term_course, tmp_path):
    proc = term.make(term_course["root"], "roster", check=False, FILE=str(_write(tmp_path, "lms.csv", "Student ID,Email\nalice,a@x.org\n")))
    assert proc.returncode != 0 and "no column 'id'" in proc.stderr and "rename" in proc.stderr
    proc = term.make(term_course["root"], "roster", check=False)
    assert proc.returncode != 0 and "usage: make roster FILE=students.csv" in proc.stderr


def test_manual_grade_reaches_grades_csv_through_make_feedback(term_course):
    grades, answer = term_course["after_feedback"]
    assert float(grades["reference"]["raw_score"]) == term_course["expected"]["reference"] + MANUAL_SCORE
    assert answer == (MANUAL_SCORE, False, MANUAL_COMMENT)


def test_zip_collect_reads_the_lms_archive_with_local_times(term_course):
    submitted = term_course["root"] / "grading" / "submitted"
    for student in LMS_FILES:
        assert sorted(p.name for p in (submitted / student / ASSIGNMENT).iterdir()) == ["protonet.ipynb", "protonet.pt", "timestamp.txt"]
    assert (submitted / "latecomer" / ASSIGNMENT / "timestamp.txt").read_text() == "2026-03-04 08:00:00"
    assert (submitted / "ontime" / ASSIGNMENT / "timestamp.txt").read_text() == "2026-03-02 21:50:00"
    assert "2 files skipped" in term_course["zip_collect"].stderr  # the two receipts (.txt)


def test_make_grade_autogrades_only_the_new_submissions(term_course):
    assert term_course["regraded"] == [], "unchanged submissions must not be autograded again"
    assert "2 submission(s) unchanged since they were autograded" in term_course["grade"].stdout
    assert "autograded 2 submission(s)" in term_course["grade"].stdout
    recorded = json.loads((term_course["root"] / "grading" / "autograded_submissions.json").read_text())[ASSIGNMENT]
    before = term_course["record_before"]
    assert set(recorded) - set(before) == set(LMS_FILES), "the two collected submissions are recorded as autograded"
    assert all(recorded[s] == before[s] for s in before), "the earlier submissions' records are untouched"


def test_make_grade_force_regrades_everything(term_course):
    """FORCE=1 reaches the grader as --force (what --force does: test_only_new_or_changed_submissions_need_autograding)."""
    dry = subprocess.run([*term.make_args(term_course["root"], "grade", ASSIGNMENT=ASSIGNMENT, FORCE="1"), "-n"], capture_output=True, text=True, check=True)
    assert "-m fsl_utils.grading grade protonet" in dry.stdout and "--force" in dry.stdout, dry.stdout
    dry = subprocess.run([*term.make_args(term_course["root"], "grade", ASSIGNMENT=ASSIGNMENT), "-n"], capture_output=True, text=True, check=True)
    assert "--force" not in dry.stdout, dry.stdout


def test_manual_grade_survives_make_grade_of_other_students(term_course):
    root = term_course["root"]
    assert _written_answer(root, "reference") == (MANUAL_SCORE, False, MANUAL_COMMENT)
    assert float(term_course["grades"]["reference"]["raw_score"]) == term_course["expected"]["reference"] + MANUAL_SCORE
    html = (root / "grading" / "feedback" / "reference" / ASSIGNMENT / "protonet.html").read_text()
    assert MANUAL_COMMENT in html


def test_grades_csv_carries_the_roster_due_date_and_late_penalty(term_course):
    rows = term_course["grades"]
    roster = {line.split(",")[0] for line in ROSTER.splitlines()[1:]}
    assert roster <= set(rows), f"grades.csv lacks {roster - set(rows)}"
    assert (rows["latecomer"]["first_name"], rows["latecomer"]["last_name"], rows["latecomer"]["email"]) == ("Grace", "Hopper", "grace@example.org")
    assert {rows[s]["duedate"] for s in roster} == {"2026-03-02 21:59:00"}, "grades.csv gives times in UTC"
    late = rows["latecomer"]
    assert (float(late["raw_score"]), float(late["late_submission_penalty"]), float(late["score"])) == (20.0, 5.0, 15.0), late
    ontime = rows["ontime"]
    assert (float(ontime["raw_score"]), float(ontime["late_submission_penalty"]), float(ontime["score"])) == (20.0, 0.0, 20.0), ontime
    assert (float(rows["absent"]["score"]), rows["absent"]["timestamp"]) == (0.0, "")
    html = (term_course["root"] / "grading" / "feedback" / "latecomer" / ASSIGNMENT / "protonet.html").read_text()
    assert "Late submission penalty (Score: -5.0)" in html
