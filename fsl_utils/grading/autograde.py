"""Autograde a batch of submissions: take each in as data, repair what would stop nbgrader, run
``nbgrader autograde`` for each in its own process and sandboxed kernel (:mod:`.batch`,
:mod:`.sandbox`), and record what was refused or could not be graded. Used by :func:`.pipeline.grade`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nbgrader.api import Gradebook

from .batch import kill_marked
from .checks.hidden import load_hidden_tests
from .sandbox.bwrap import KERNEL_NAME
from .sandbox.kernelspec import write_kernelspec
from .sandbox.intake import take_in
from .sandbox.isolation import grading_folder, preflight as check_one, sandbox_profile, share_cache, uid_base as first_uid, unsandboxed

#: nbgrader's cell metadata version (nbgrader 0.9).
SCHEMA_VERSION = 3
#: Files the intake refused, per student (``grading/refused_files.json``; shown in the feedback too).
REFUSED = "refused_files.json"
#: When each submission's grading started and ended (``grading/grading_times.json``, seconds since the epoch).
TIMES = "grading_times.json"


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
    """Copy every submission into ``intake/<student>/<assignment>`` through :func:`.sandbox.intake.take_in`
    (links, special and oversized files refused) and repair what would stop nbgrader.

    Returns:
        ``({student: {file: reason refused}}, {student: why nothing can be graded})``.
    """
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
    with Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}", "fsl-course") as gb:
        for student in students:
            gb.update_or_create_student(student)


def autograde_each(root: Path, assignment: str, students: list[str], sandbox: bool, timeout: int = 900, jobs: int = 1,
                   preflight: bool = True) -> dict[str, str]:
    """Autograde every student in its own process and sandboxed kernel, ``jobs`` at a time.

    Submissions are taken in first (:func:`take_in_all`); with ``sandbox`` one sandbox is started
    and checked before anything is graded (:func:`.sandbox.isolation.preflight`), so a machine where kernels
    cannot start stops here instead of giving zeros.

    Returns:
        ``{student: problem}`` for submissions nbgrader could not grade (e.g. invalid JSON);
        they keep 0 points for the notebook. Files refused by the intake are written to
        ``grading/refused_files.json``.

    Raises:
        SandboxUnavailable: the sandbox cannot start (the message says why and what to do).
    """
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
        common_args = [f"--Execute.kernel_name={KERNEL_NAME}", "--KernelManager.transport=ipc",
                       f"--CourseDirectory.submitted_directory={base / 'intake'}"]
        common_env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
                      "FSL_COURSE_ROOT": str(root), "OMP_NUM_THREADS": str(threads), "JUPYTER_PATH": str(base / "jupyter")}
        write_kernelspec(base / "jupyter", profile)
        if root_mode and sandbox:
            shared = share_cache(Path(json.loads(profile.read_text())["env"]["FSL_CACHE_DIR"]))
            if shared:
                print(f"made {len(shared)} file(s) of the dataset cache readable to the sandboxed kernels (they run under their own user ids)")
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
        kill_marked(str(base))
        shutil.rmtree(base, ignore_errors=True)


def prepare(root: Path, assignment: str) -> bool:
    """Run the optional ``prepare()`` of ``solutions/<assignment>/hidden_tests.py`` in the grader.

    It builds what every submission's kernel would otherwise rebuild, such as the dataset caches:
    a sandboxed kernel may only read ``FSL_CACHE_DIR``. Returns whether there was one to run.
    """
    try:
        module = load_hidden_tests(assignment, root)
    except FileNotFoundError:
        return False
    hook = getattr(module, "prepare", None)
    if not callable(hook):
        return False
    hook()
    return True
