"""A term on a real multi-user JupyterHub (tests/hub/harness.py): deploy/local/jupyterhub_config.py
on localhost with configurable-http-proxy and LocalProcessSpawner, an instructor and two students
as Unix accounts this test creates (``instr-t24``, ``alice-t24``, ``bob-t24``), nbgrader's
exchange set up as deploy/local/etc-jupyter/nbgrader_config.py says.

1. The instructor (commands as in a terminal of their server, as their Unix account, in the
   course checkout ~/fsl-course): ``make roster``, ``nbgrader release_assignment protonet``.
2. Each student, through the hub's API with their own token (what JupyterLab's Assignments tab
   sends): lists, fetches the assignment, saves a different notebook and weights into it through
   the contents API, submits.
3. The instructor: ``nbgrader collect protonet``, ``make grade``, ``nbgrader release_feedback``.
4. Each student fetches their feedback through the hub.

Checked: both grades (the reference solution 20, a prototype-sum mistake 16) in grades.csv with
the roster's names and in each student's feedback; as each student (their Unix account, inside
the hub's namespace): no access to the other's home, the exchange's inbound and feedback
listings, the instructor's course directory (hidden tests, gradebook, collected submissions),
no way to replace the course's exchange folder, and no readable hidden tests anywhere on the
machine; the instructor's formgrader answers on the hub, the students' servers have none.

The term runs in a thread from the session's first test on (tests/conftest.py's ``_early_hub``): it
is mostly waiting, so it overlaps the other tests; the tests here read what it recorded.

Locally the test skips with the reason when JupyterHub, configurable-http-proxy, bubblewrap or
root are missing; under ``CI`` it FAILS instead (.ci/run installs them).
"""

from __future__ import annotations

import base64
import csv
import json
import os
import shlex
import shutil
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from fsl_utils.grading.notebook import fill_solutions
from hub import harness
from needs import require

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTOR, ALICE, BOB = "instr-t24", "alice-t24", "bob-t24"
STUDENTS = (ALICE, BOB)
COURSE_ID, ASSIGNMENT = "fsl-course", "protonet"
ROSTER = f"""id,first_name,last_name,email
{ALICE},Alice,Liddell,alice@example.org
{BOB},Bob,Bobson,bob@example.org
"""


from grading import cases, term
#: student -> (mistake in the reference answers or None, expected autograded score)
SUBMISSIONS = {ALICE: (None, 20.0), BOB: ("sum_not_mean", cases.expected_score(cases.MUTANTS["sum_not_mean"][2]))}

ACCESS_CHECK = r'''
import json, os, sys
other_home, course, exchange, other_inbound, walk = sys.argv[1:6]
def attempt(what, path):
    try:
        if what == "list":
            os.listdir(path)
        elif what == "read":
            open(path, "rb").read(1)
        elif what == "rename":
            os.rename(path, path + "-replaced")
            os.rename(path + "-replaced", path)
        return "allowed"
    except PermissionError:
        return "denied"
    except FileNotFoundError:
        return "missing"
out = {
    "list other home": attempt("list", other_home),
    "read other notebook": attempt("read", os.path.join(other_home, "protonet", "protonet.ipynb")),
    "list course": attempt("list", course),
    "read hidden tests": attempt("read", os.path.join(course, "solutions", "protonet", "hidden_tests.py")),
    "read gradebook": attempt("read", os.path.join(course, "grading", "gradebook.db")),
    "read collected submission": attempt("read", os.path.join(course, "grading", "submitted", os.path.basename(other_home), "protonet", "protonet.ipynb")),
    "list inbound": attempt("list", os.path.join(exchange, "fsl-course", "inbound")),
    "list feedback": attempt("list", os.path.join(exchange, "fsl-course", "feedback")),
    "rename course exchange folder": attempt("rename", os.path.join(exchange, "fsl-course")),
    "read other submission by its exact name": attempt("read", os.path.join(other_inbound, "protonet.ipynb")),
}
readable, walked = [], 0
if walk == "walk":
    for folder, dirs, files in os.walk("/"):
        if folder in ("/proc", "/sys", "/dev", "/run"):
            dirs[:] = []
            continue
        walked += len(files)
        for name in files:
            path = os.path.join(folder, name)
            if name == "hidden_tests.py" or (os.path.basename(folder) == "protonet" and os.path.basename(os.path.dirname(folder)) == "solutions"):
                if attempt("read", path) == "allowed":
                    readable.append(path)
out["readable hidden tests or solutions"], out["files seen"] = readable, walked
print(json.dumps(out))
'''


def _require_hub() -> None:
    require("JupyterHub test", harness.missing_requirements())


def _make(target: str, **variables: str) -> str:
    """The instructor's ``make`` in ~/fsl-course with the course's environment (never reinstalled)."""
    return shlex.join(term.make_args(Path("fsl-course"), target, **variables))


def _instructor_course(home: Path) -> Path:
    """The instructor's course directory: what the private course repository holds for this
    assignment. The ``fsl_utils`` package is the one installed in the hub's environment (as
    ``pip install -e`` of the instructor's checkout would give; the grading sandbox shows a kernel
    the package the environment imports)."""
    course = home / "fsl-course"
    course.mkdir()
    for name in ("Makefile", "pyproject.toml", "nbgrader_config.py"):
        shutil.copy2(ROOT / name, course / name)
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    for folder in (f"solutions/{ASSIGNMENT}", f"assignments/{ASSIGNMENT}"):
        shutil.copytree(ROOT / folder, course / folder, ignore=ignore)
    (course / "students.csv").write_text(ROSTER)
    (home / ".jupyter").mkdir()
    shutil.copy(harness.DEPLOY / "instructor-nbgrader_config.py", home / ".jupyter" / "nbgrader_config.py")
    harness.chown_tree(home, INSTRUCTOR)
    return course


def _assignment(hub, student: str) -> dict:
    listing = hub.json("GET", f"/user/{student}/assignments?course_id={COURSE_ID}", token=hub.token_for(student))
    assert listing["success"], listing
    found = [a for a in listing["value"] if a["assignment_id"] == ASSIGNMENT]
    assert found, f"{student} does not see {ASSIGNMENT}: {listing}"
    return found[-1]


def _action(hub, student: str, action: str) -> object:
    status, data = hub.server(student, "POST", f"/assignments/{action}", form={"course_id": COURSE_ID, "assignment_id": ASSIGNMENT})
    assert status == 200, f"{student} {action}: HTTP {status} {data[:1000]!r}"
    answer = json.loads(data)
    assert not (isinstance(answer, dict) and answer.get("success") is False), f"{student} {action}: {answer}"
    return answer


def _put(hub, student: str, path: str, model: dict) -> None:
    status, data = hub.server(student, "PUT", f"/api/contents/{urllib.parse.quote(path)}", body=model)
    assert status in (200, 201), f"{student} saving {path}: HTTP {status} {data[:500]!r}"


def _get(hub, student: str, path: str) -> dict:
    status, data = hub.server(student, "GET", f"/api/contents/{urllib.parse.quote(path)}?content=1")
    assert status == 200, f"{student} reading {path}: HTTP {status} {data[:500]!r}"
    return json.loads(data)


@pytest.fixture(scope="module")
def term_on_hub(tmp_path_factory, _early_hub):
    """The term (:func:`run_term`), started by tests/conftest.py's ``_early_hub`` when the session
    began: its minutes are mostly waits for servers and accounts, which overlap the other tests."""
    _require_hub()
    if _early_hub is not None:
        return _early_hub.result()
    return run_term(tmp_path_factory.mktemp("hub"))


def run_term(tmp: Path, environ: dict[str, str] | None = None) -> dict:
    """The whole term on a fresh hub in ``tmp`` (accounts created and removed); what the tests read.
    ``environ``: the environment to run it in (default: os.environ now)."""
    environ = dict(os.environ if environ is None else environ)
    seconds: dict[str, float] = {}
    (tmp / "students.csv").write_text(ROSTER)
    released = ROOT / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    start = time.perf_counter()
    homes = {user: harness.create_account(user) for user in (INSTRUCTOR, *STUDENTS)}
    try:
        course = _instructor_course(homes[INSTRUCTOR])
        data = Path(environ.get("FSL_DATA_DIR", ROOT / "data")).resolve()
        with harness.jupyterhub([INSTRUCTOR], tmp / "students.csv", data, environ=environ) as hub:
            out: dict = {"hub": hub, "course": course, "seconds": seconds}
            seconds["hub up"] = time.perf_counter() - start
            seconds["servers"] = hub.start_servers([INSTRUCTOR, *STUDENTS])

            def step(name, fn):
                t = time.perf_counter()
                value = fn()
                seconds[name] = time.perf_counter() - t
                return value

            out["roster"] = step("make roster", lambda: hub.run_as(INSTRUCTOR, _make("roster", FILE="students.csv")))
            nbgrader = shlex.quote(str(Path(sys.executable).parent / "nbgrader"))
            step("release_assignment", lambda: hub.run_as(INSTRUCTOR, f"cd fsl-course && {nbgrader} release_assignment {ASSIGNMENT}"))
            out["listed"] = {s: _assignment(hub, s)["status"] for s in STUDENTS}

            def fetch_and_submit():
                for student, (mistake, _) in SUBMISSIONS.items():
                    _action(hub, student, "fetch")
                    notebook = fill_solutions(released, cases.answers(mistake))
                    _put(hub, student, f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb", {"type": "notebook", "format": "json", "content": notebook})
                    weights = base64.b64encode(cases.WEIGHTS.read_bytes()).decode()
                    _put(hub, student, f"{ASSIGNMENT}/{ASSIGNMENT}.pt", {"type": "file", "format": "base64", "content": weights})
                    _action(hub, student, "submit")

            step("fetch and submit", fetch_and_submit)
            out["submitted"] = {s: _assignment(hub, s)["status"] for s in STUDENTS}
            inbound = hub.folder / "exchange" / COURSE_ID / "inbound"
            out["inbound"] = {s: [p for p in inbound.iterdir() if p.name.startswith(f"{s}+")] for s in STUDENTS}
            step("collect", lambda: hub.run_as(INSTRUCTOR, f"cd fsl-course && {nbgrader} collect {ASSIGNMENT}"))
            out["grade"] = step("make grade", lambda: hub.run_as(INSTRUCTOR, _make("grade", ASSIGNMENT=ASSIGNMENT, JOBS="2"), timeout=1200))
            step("release_feedback", lambda: hub.run_as(INSTRUCTOR, f"cd fsl-course && {nbgrader} release_feedback {ASSIGNMENT}"))

            def fetch_feedback():
                pages = {}
                for student in STUDENTS:
                    _action(hub, student, "fetch_feedback")
                    folders = _get(hub, student, f"{ASSIGNMENT}/feedback")["content"]
                    assert len(folders) == 1, f"{student}: feedback folders {folders}"
                    pages[student] = _get(hub, student, f"{folders[0]['path']}/{ASSIGNMENT}.html")["content"]
                return pages

            out["feedback"] = step("fetch_feedback", fetch_feedback)
            with open(course / "grading" / "grades.csv", newline="") as f:
                out["grades"] = {row["student_id"]: row for row in csv.DictReader(f)}

            def access():
                script = hub.folder / "access_check.py"
                script.write_text(ACCESS_CHECK)
                script.chmod(0o644)
                result = {}
                for student, other in ((ALICE, BOB), (BOB, ALICE)):
                    args = [str(homes[other]), str(course), str(hub.folder / "exchange"), str(out["inbound"][other][0]), "walk" if student == BOB else "-"]
                    proc = hub.run_as(student, shlex.join([sys.executable, str(script), *args]))
                    result[student] = json.loads(proc.stdout.strip().splitlines()[-1])
                return result

            out["access"] = step("access checks", access)
            out["formgrader"] = {user: hub.server(user, "GET", "/formgrader/api/assignments") for user in (INSTRUCTOR, ALICE)}
    finally:
        for user in (INSTRUCTOR, *STUDENTS):
            harness.remove_account(user)
    seconds["total"] = time.perf_counter() - start
    print("hub test seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + f"; load average {os.getloadavg()[0]:.1f}")
    return out


def test_students_see_fetch_and_submit_through_the_hub(term_on_hub):
    assert term_on_hub["listed"] == {ALICE: "released", BOB: "released"}
    assert term_on_hub["submitted"] == {ALICE: "submitted", BOB: "submitted"}
    for student, found in term_on_hub["inbound"].items():
        assert len(found) == 1, f"{student}'s submissions in the exchange: {found}"


def test_both_grades_are_right_with_the_roster_names(term_on_hub):
    grades = term_on_hub["grades"]
    assert "autograded 2 submission(s)" in term_on_hub["grade"].stdout
    for student, (_, score) in SUBMISSIONS.items():
        assert float(grades[student]["raw_score"]) == score, f"{student}: {grades[student]}"
    assert (grades[ALICE]["first_name"], grades[ALICE]["email"]) == ("Alice", "alice@example.org")


def test_each_student_fetches_their_own_feedback(term_on_hub):
    for student, (mistake, score) in SUBMISSIONS.items():
        page = term_on_hub["feedback"][student]
        assert f"{ASSIGNMENT} (Score: {score} / 25.0)" in page, f"{student}'s feedback does not show {score}"
    assert "sum of each class" in term_on_hub["feedback"][BOB]


def test_students_cannot_reach_each_other_or_the_course(term_on_hub):
    denied = {"list other home", "read other notebook", "list course", "read hidden tests", "read gradebook", "read collected submission",
              "list inbound", "list feedback", "rename course exchange folder"}
    for student, result in term_on_hub["access"].items():
        got = {k: v for k, v in result.items() if k in denied}
        assert got == dict.fromkeys(denied, "denied"), f"as {student}: {got}"
        # nbgrader's design: a submission in the inbound folder is readable by whoever knows its
        # name, which carries 12 random characters (docs/instructors.md says so)
        assert result["read other submission by its exact name"] == "allowed"
    for student, (inbound,) in term_on_hub["inbound"].items():
        assert len(inbound.name.split("+")[-1]) >= 12, f"no random part in {inbound.name}"
    search = term_on_hub["access"][BOB]
    assert search["files seen"] > 10_000, f"the file search as {BOB} saw only {search['files seen']} files"
    assert search["readable hidden tests or solutions"] == [], "hidden tests readable by a student"


def test_formgrader_only_for_the_instructor(term_on_hub):
    status, body = term_on_hub["formgrader"][INSTRUCTOR]
    assert status == 200, body[:500]
    assignments = {a["name"]: a for a in json.loads(body)}
    assert assignments[ASSIGNMENT]["status"] == "released" and assignments[ASSIGNMENT]["num_submissions"] == 2, assignments
    assert term_on_hub["formgrader"][ALICE][0] == 404, "students' servers must not serve the formgrader"
