"""``python -m fsl_utils.grading`` — the instructor's commands behind ``make release`` and
``make grade``, run through the real nbgrader CLI in the course directory.

* ``release ASSIGNMENT``: ``nbgrader generate_assignment`` into ``assignments/`` (reference
  weights and hidden tests stay out of it, see :mod:`.release`).
* ``grade ASSIGNMENT``: start one sandbox to check that kernels can be isolated (else stop,
  grading nothing: :func:`.isolation.check_sandbox`), sync the gradebook with the source (generating into a
  temporary folder, so the committed release is untouched), take every submission in
  ``grading/submitted/*/ASSIGNMENT/`` that is new or changed since it was autograded
  (:mod:`.incremental`; ``--force``: all of them) in as data (:mod:`.intake`), ``nbgrader autograde``
  each in its own process and bubblewrap sandbox (:mod:`.batch`, :mod:`.sandbox`), then ``feedback``.
* ``feedback ASSIGNMENT``: ``nbgrader generate_feedback`` (with the manual grades and
  comments of the formgrader) and ``nbgrader export`` to ``grading/grades.csv``; no
  autograding.
* ``roster FILE`` / ``deadlines FILE``: check a CSV of students / due dates and import it
  with ``nbgrader db student import`` / ``nbgrader db assignment import`` (:mod:`.roster`).

The steps are separate functions (:func:`.isolation.check_sandbox`, :func:`take_in_all`,
:func:`.isolation.sandbox_profile`, :func:`autograde_each`, :func:`grade`, :func:`feedback`) so that other commands can reuse them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .hidden import course_root
from .incremental import record_autograded, students_to_autograde

#: nbgrader's cell metadata version (nbgrader 0.9).
SCHEMA_VERSION = 3
#: Files the intake refused, per student (``grading/refused_files.json``; shown in the feedback too).
REFUSED = "refused_files.json"
#: When each submission's grading started and ended (``grading/grading_times.json``, seconds since the epoch).
TIMES = "grading_times.json"


def nbgrader(root: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``nbgrader <args>`` in the course directory ``root``; its log goes to stderr."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    # nbgrader runs the `alembic` script of its environment when it creates a gradebook.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    full_env = {**os.environ, "PATH": path, "FSL_COURSE_ROOT": str(root), **(env or {})}
    proc = subprocess.run(cmd, cwd=root, env=full_env, text=True, capture_output=True)
    sys.stderr.write(proc.stderr[-20000:])
    if check and proc.returncode != 0:
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed (exit {proc.returncode}); see the log above.")
    return proc


def release(root: Path, assignment: str, folder: Path | None = None) -> Path:
    """Generate the student release of ``assignment`` (into ``folder`` instead of ``assignments/``)."""
    args = ["generate_assignment", assignment, "--force"]
    env = {}
    if folder is not None:
        args.append(f"--CourseDirectory.release_directory={folder}")
        env["FSL_RELEASE_DIR"] = str(folder)
    nbgrader(root, *args, env=env)
    return (folder or root / "assignments") / assignment


def repair_submission(folder: Path) -> list[str]:
    """Fix what would stop nbgrader before it reads a notebook, keeping the student's work.

    * notebooks that are not UTF-8 (e.g. saved as Latin-1) are re-encoded from cp1252;
    * an edited ``schema_version`` of nbgrader cell metadata (``SchemaTooOldError`` stops a
      whole nbgrader batch) is set back; the cells themselves are restored from the
      gradebook anyway;
    * copies of a grade cell (duplicated ``grade_id``) lose their nbgrader metadata except
      the last copy, as nbgrader's ``DeduplicateIds`` does — but completely, because the
      empty metadata it leaves crashes ``OverwriteCells.add_missing_cells`` (KeyError).

    The original is kept as ``<name>.ipynb.orig``. Returns what was repaired.
    """
    repaired = []
    for path in folder.glob("*.ipynb"):
        raw, changes = path.read_bytes(), []
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp1252", errors="replace")
            changes.append(f"{path.name} was not UTF-8: re-encoded")
        try:
            nb = json.loads(text)
            cells = [c for c in nb["cells"] if isinstance(c, dict) and isinstance(c.get("metadata", {}).get("nbgrader"), dict)]
        except (ValueError, KeyError, TypeError, AttributeError):
            nb, cells = None, []
        edited = [c for c in cells if c["metadata"]["nbgrader"].get("schema_version") != SCHEMA_VERSION]
        for cell in edited:
            cell["metadata"]["nbgrader"]["schema_version"] = SCHEMA_VERSION
        if edited:
            changes.append(f"{path.name}: nbgrader metadata version of {len(edited)} cell(s) restored")
        seen: set[str] = set()
        copies = []
        for cell in reversed(cells):  # the last copy of an id is the one graded (as in nbgrader)
            gid = cell["metadata"]["nbgrader"].get("grade_id")
            if gid in seen or not gid:
                copies.append(cell)
            seen.add(gid)
        for cell in copies:
            del cell["metadata"]["nbgrader"]
        if copies:
            changes.append(f"{path.name}: {len(copies)} copied or id-less grade cell(s) demoted to ordinary cells")
        if edited or copies:
            text = json.dumps(nb, ensure_ascii=False)
        if changes:
            path.with_suffix(".ipynb.orig").write_bytes(raw)
            path.write_text(text, encoding="utf-8")
            repaired += changes
    return repaired


def take_in_all(root: Path, assignment: str, students: list[str], intake: Path) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Copy every submission into ``intake/<student>/<assignment>`` through :func:`.intake.take_in`
    (links, special and oversized files refused) and repair what would stop nbgrader.

    Returns:
        ``({student: {file: reason refused}}, {student: why nothing can be graded})``.
    """
    from .intake import take_in

    refused, fatal = {}, {}
    for student in students:
        result = take_in(root / "grading" / "submitted" / student / assignment, intake / student / assignment)
        if result.refused:
            refused[student] = result.refused
            for name, reason in result.refused.items():
                print(f"{student}: REFUSED {name}: {reason}" + (f" (-> {result.links[name]})" if name in result.links else ""))
        if result.fatal:
            fatal[student] = result.fatal
            continue
        for note in repair_submission(intake / student / assignment):
            print(f"{student}: {note} (original kept as .orig)")
    return refused, fatal


def _update(path: Path, students: list[str], values: dict) -> None:
    """Replace the entries of ``students`` in the JSON object at ``path`` by ``values`` (a batch of
    some students keeps what earlier batches recorded for the others)."""
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        data = {}
    data = {k: v for k, v in data.items() if k not in students}
    path.write_text(json.dumps({**data, **values}, indent=1))


def _ensure_students(root: Path, students: list[str]) -> None:
    """Students whose submission could not be taken in still get a row (0 points) in grades.csv."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}", "fsl-course") as gb:
        for student in students:
            gb.update_or_create_student(student)


def autograde_each(root: Path, assignment: str, students: list[str], sandbox: bool, timeout: int = 900, jobs: int = 1,
                   preflight: bool = True) -> dict[str, str]:
    """Autograde every student in its own process and sandboxed kernel, ``jobs`` at a time.

    Submissions are taken in first (:func:`take_in_all`); with ``sandbox`` one sandbox is started
    and checked before anything is graded (:func:`.sandbox.preflight`), so a machine where kernels
    cannot start stops here instead of giving zeros.

    Returns:
        ``{student: problem}`` for submissions nbgrader could not grade (e.g. invalid JSON);
        they keep 0 points for the notebook. Files refused by the intake are written to
        ``grading/refused_files.json``.

    Raises:
        SandboxUnavailable: the sandbox cannot start (the message says why and what to do).
    """
    from . import sandbox as sb
    from .isolation import grading_folder, preflight as check_one, sandbox_profile, uid_base as first_uid, unsandboxed

    sandbox = sandbox is not False
    base = grading_folder()
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    root_mode = os.geteuid() == 0
    uid_base = first_uid()
    try:
        refused, problems = take_in_all(root, assignment, students, base / "intake")
        _update(root / "grading" / REFUSED, students, refused)
        profile = sandbox_profile(root, assignment, base, threads)
        if not sandbox:
            unsandboxed(profile)
        common_args = [f"--Execute.kernel_name={sb.KERNEL_NAME}", "--KernelManager.transport=ipc",
                       f"--CourseDirectory.submitted_directory={base / 'intake'}"]
        common_env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
                      "FSL_COURSE_ROOT": str(root), "OMP_NUM_THREADS": str(threads), "JUPYTER_PATH": str(base / "jupyter")}
        sb.write_kernelspec(base / "jupyter", profile)
        if sandbox and preflight:
            check_one(profile, base / "preflight", uid=uid_base + 999 if root_mode else None)
        jobs_spec = []
        for i, student in enumerate(s for s in students if s not in problems):
            own = base / f"s{i}"  # this submission's sockets and runtime files
            (own / "ipc").mkdir(parents=True)
            os.chmod(own, 0o711)
            env = {**common_env, "FSL_SANDBOX_IPC": str(own / "ipc"), "JUPYTER_RUNTIME_DIR": str(own / "runtime")}
            if root_mode and sandbox:
                uid = uid_base + i % 999  # the submission's own user id: its processes are the only ones of that id
                os.chown(own / "ipc", uid, uid)
                env["FSL_SANDBOX_UID"] = str(uid)
            args = [*common_args, f"--KernelManager.ip={own}/ipc/kernel"]
            jobs_spec.append({"id": student, "args": args, "env": env, "marker": str(own), "log": str(base / f"s{i}.log")})
        if problems:
            _ensure_students(root, list(problems))
        spec = base / "batch.json"
        spec.write_text(json.dumps({"root": str(root), "assignment": assignment, "timeout": timeout, "jobs": jobs, "students": jobs_spec,
                                    "times": str(base / "times.json")}))
        proc = subprocess.run([sys.executable, "-m", "fsl_utils.grading.batch", str(spec)], cwd=root, text=True, capture_output=True,
                              env={**os.environ, **common_env})
        for job in jobs_spec:
            log = Path(job["log"])
            if log.is_file():
                sys.stderr.write(f"--- autograde {job['id']}\n" + log.read_text(errors="replace")[-3000:])
        if proc.returncode != 0 or not proc.stdout.strip():
            raise RuntimeError(f"the grading batch failed (exit {proc.returncode}): {proc.stderr[-3000:]}")
        if (base / "times.json").is_file():
            _update(root / "grading" / TIMES, students, json.loads((base / "times.json").read_text()))
        return {**problems, **json.loads(proc.stdout.strip().splitlines()[-1])}
    finally:
        from .batch import kill_marked

        kill_marked(str(base))
        shutil.rmtree(base, ignore_errors=True)


def prepare(root: Path, assignment: str) -> bool:
    """Run the optional ``prepare()`` of ``solutions/<assignment>/hidden_tests.py`` in the grader.

    It builds what every submission's kernel would otherwise rebuild, such as the dataset caches:
    a sandboxed kernel may only read ``FSL_CACHE_DIR``. Returns whether there was one to run.
    """
    from .hidden import load_hidden_tests

    try:
        module = load_hidden_tests(assignment, root)
    except FileNotFoundError:
        return False
    hook = getattr(module, "prepare", None)
    if not callable(hook):
        return False
    hook()
    return True


def grade(root: Path, assignment: str, csv: Path | None = None, sandbox: bool = True, jobs: int | None = None,
          timeout: int = 900, force: bool = False) -> Path:
    """Autograde the new and changed submissions of ``assignment``, write everyone's feedback
    and export grades (:func:`feedback`).

    Args:
        sandbox: run each kernel under bubblewrap (:mod:`.sandbox`). False only on the
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
    from .isolation import UNSANDBOXED, check_sandbox

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
    from .sandbox import SandboxUnavailable

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
    from . import roster

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
