"""``python -m fsl_utils.grading`` — the instructor's commands behind ``make release`` and
``make grade``, run through the real nbgrader CLI in the course directory.

* ``release ASSIGNMENT``: ``nbgrader generate_assignment`` into ``assignments/`` (reference
  weights and hidden tests stay out of it, see :mod:`.release`).
* ``grade ASSIGNMENT``: start one sandbox to check that kernels can be isolated (else stop,
  grading nothing: :func:`.sandbox.isolation.check_sandbox`), sync the gradebook with the source (generating into a
  temporary folder, so the committed release is untouched), take every submission in
  ``grading/submitted/*/ASSIGNMENT/`` that is new or changed since it was autograded
  (:mod:`.incremental`; ``--force``: all of them) in as data (:mod:`.sandbox.intake`), ``nbgrader autograde``
  each in its own process and bubblewrap sandbox (:mod:`.autograde`, :mod:`.batch`, :mod:`.sandbox`), then ``feedback``.
* ``feedback ASSIGNMENT``: ``nbgrader generate_feedback`` (with the manual grades and
  comments of the formgrader) and ``nbgrader export`` to ``grading/grades.csv``; no
  autograding.
* ``roster FILE`` / ``deadlines FILE``: check a CSV of students / due dates and import it
  with ``nbgrader db student import`` / ``nbgrader db assignment import`` (:mod:`.roster`).

The steps are separate functions (:func:`.sandbox.isolation.check_sandbox`, :func:`.autograde.take_in_all`,
:func:`.sandbox.isolation.sandbox_profile`, :func:`.autograde.autograde_each`, :func:`grade`, :func:`feedback`) so that
other commands can reuse them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from . import roster
from .autograde import autograde_each, prepare
from .command import nbgrader
from .incremental import record_autograded, students_to_autograde
from .paths import course_root
from .sandbox.bwrap import SandboxUnavailable
from .sandbox.isolation import UNSANDBOXED, check_sandbox


def release(root: Path, assignment: str, folder: Path | None = None) -> Path:
    """Generate the student release of ``assignment`` (into ``folder`` instead of ``assignments/``)."""
    args = ["generate_assignment", assignment, "--force"]
    env = {}
    if folder is not None:
        args.append(f"--CourseDirectory.release_directory={folder}")
        env["FSL_RELEASE_DIR"] = str(folder)
    nbgrader(root, *args, env=env)
    return (folder or root / "assignments") / assignment


def grade(root: Path, assignment: str, csv: Path | None = None, sandbox: bool = True, jobs: int | None = None,
          timeout: int = 900, force: bool = False) -> Path:
    """Autograde the new and changed submissions of ``assignment``, write everyone's feedback
    and export grades (:func:`feedback`).

    Args:
        sandbox: run each kernel under bubblewrap (:mod:`.sandbox.bwrap`). False only on the
            instructor's explicit request (``--no-sandbox``); the run then says so loudly.
        jobs: submissions graded at the same time (default ``$FSL_GRADING_JOBS`` or 1).
        timeout: wall-clock seconds allowed per submission.
        force: autograde every submission again, also the unchanged ones (their manual
            scores stay in the gradebook, flagged by nbgrader as needing review).

    Raises:
        SandboxUnavailable: the sandbox cannot start here; nothing was graded.
    """
    sandbox = sandbox is not False  # (None, the old "when the machine can", now means: sandboxed or refuse)
    submitted = sorted((root / "grading" / "submitted").glob(f"*/{assignment}"))
    if not submitted:
        raise FileNotFoundError(
            f"no submissions in {root / 'grading' / 'submitted'}/<student>/{assignment}/: copy each student's folder there first"
        )
    jobs = jobs or int(os.environ.get("FSL_GRADING_JOBS", "1"))
    if sandbox:
        check_sandbox(root, assignment, jobs)  # fail closed: before anything is graded or written
    else:
        print(UNSANDBOXED, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="fsl-release-") as tmp:
        release(root, assignment, Path(tmp))  # puts the assignment and its grade cells in the gradebook
    students = [p.parent.name for p in submitted]
    todo = students_to_autograde(root, assignment, students, force=force)
    if len(todo) < len(students):
        print(f"{len(students) - len(todo)} submission(s) unchanged since they were autograded: kept as graded, "
              "with their manual grades (`make grade FORCE=1` autogrades them again)")
    problems: dict[str, str] = {}
    if todo:
        prepare(root, assignment)
        start = time.perf_counter()
        problems = autograde_each(root, assignment, todo, sandbox, timeout=timeout, jobs=jobs, preflight=False)
        record_autograded(root, assignment, [s for s in todo if s not in problems])
        print(f"autograded {len(todo)} submission(s) in {time.perf_counter() - start:.0f} s, {jobs} at a time"
              + (" (sandboxed)" if sandbox else " WITHOUT THE SANDBOX"))
    for student, problem in problems.items():
        print(f"NOT GRADED {student}: {problem}")
    (root / "grading" / "not_graded.json").write_text(json.dumps(problems, indent=1))
    try:
        csv = feedback(root, assignment, csv)
    finally:
        if not sandbox:
            print(UNSANDBOXED, file=sys.stderr)
    return csv


def feedback(root: Path, assignment: str, csv: Path | None = None) -> Path:
    """``nbgrader generate_feedback`` for every autograded submission of ``assignment`` (with
    the manual scores and comments entered in the formgrader) and ``nbgrader export`` of
    all grades to ``csv`` (default ``grading/grades.csv``). Autogrades nothing."""
    autograded = root / "grading" / "autograded"
    if not any(autograded.glob(f"*/{assignment}")):
        raise FileNotFoundError(f"nothing of {assignment} is autograded yet (no {autograded}/<student>/{assignment}/): run `make grade ASSIGNMENT={assignment}` first")
    started = time.time()
    # check=False: one submission nbgrader cannot render must not stop the others' feedback;
    # the ones left without a fresh page are reported below
    nbgrader(root, "generate_feedback", assignment, "--force", check=False)
    csv = csv or root / "grading" / "grades.csv"
    nbgrader(root, "export", f"--to={csv}")
    print(f"grades: {csv}\nfeedback: {root / 'grading' / 'feedback'}/<student>/{assignment}/")
    missing = missing_feedback(root, assignment, since=started)
    if missing:
        raise FeedbackMissing(f"no feedback was generated for {len(missing)} of the autograded submissions of {assignment}: "
                              f"{', '.join(missing)} (nbgrader's log above says why; their grades are in {csv}). "
                              f"Fix the cause and run `make feedback ASSIGNMENT={assignment}` again.")
    return csv


class FeedbackMissing(RuntimeError):
    """``generate_feedback`` left some autograded submissions without a feedback page."""


def missing_feedback(root: Path, assignment: str, since: float = 0.0) -> list[str]:
    """Students whose autograded ``assignment`` has no feedback page written at or after ``since``
    (a Unix time) in ``grading/feedback/<student>/<assignment>/``."""
    missing = []
    for folder in sorted((root / "grading" / "autograded").glob(f"*/{assignment}")):
        student = folder.parent.name
        pages = (root / "grading" / "feedback" / student / assignment).glob("*.html")
        if not any(page.stat().st_mtime >= since - 1 for page in pages):
            missing.append(student)
    return missing


def main(argv: list[str] | None = None) -> int:
    """The command line (``python -m fsl_utils.grading``); returns the exit status (2: nothing graded, 3: feedback missing)."""
    parser = argparse.ArgumentParser(prog="python -m fsl_utils.grading", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("release", "grade", "feedback", "roster", "deadlines"))
    parser.add_argument("assignment", help="assignment id, e.g. protonet (roster, deadlines: the CSV file)")
    parser.add_argument("--root", type=Path, default=None, help="course directory (default: found from the current folder)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run student code WITHOUT isolation (only where bubblewrap cannot run, for trusted submissions)")
    parser.add_argument("--jobs", type=int, default=None, help="submissions graded at the same time (default $FSL_GRADING_JOBS or 1)")
    parser.add_argument("--timeout", type=int, default=900, help="wall-clock seconds per submission (default 900)")
    parser.add_argument("--force", action="store_true", help="grade: autograde unchanged submissions again too")
    args = parser.parse_args(argv)
    root = (args.root or course_root()).resolve()
    try:
        if args.command == "release":
            print(f"release: {release(root, args.assignment)}")
        elif args.command == "grade":
            grade(root, args.assignment, sandbox=not args.no_sandbox, jobs=args.jobs, timeout=args.timeout, force=args.force)
        elif args.command == "feedback":
            feedback(root, args.assignment)
        else:
            (roster.import_roster if args.command == "roster" else roster.import_deadlines)(root, Path(args.assignment))
    except SandboxUnavailable as err:
        print(f"NOT GRADED: the grading sandbox cannot start on this machine, so no student code was run.\n  Why: {err}\n"
              f"  Fix the sandbox, or grade WITHOUT isolation (student code then runs with your rights) with\n"
              f"  python -m fsl_utils.grading grade {args.assignment} --no-sandbox   (make grade ... NO_SANDBOX=1)", file=sys.stderr)
        return 2
    except (FileNotFoundError, roster.CsvError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except FeedbackMissing as err:
        print(f"FEEDBACK MISSING: {err}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
