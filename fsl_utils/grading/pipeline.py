"""``python -m fsl_utils.grading`` — the instructor's commands behind ``make release`` and
``make grade``, run through the real nbgrader CLI in the course directory.

* ``release ASSIGNMENT``: ``nbgrader generate_assignment`` into ``assignments/`` (reference
  weights and hidden tests stay out of it, see :mod:`.release`).
* ``grade ASSIGNMENT``: sync the gradebook with the source (generating into a temporary
  folder, so the committed release is untouched), ``nbgrader autograde`` every submission in
  ``grading/submitted/*/ASSIGNMENT/``, ``nbgrader generate_feedback`` and
  ``nbgrader export`` to ``grading/grades.csv``.
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


def _kill_leftovers(marker: str) -> None:
    """Kill processes whose command line mentions ``marker`` (a submission's sandbox)."""
    import signal

    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def normalize_encoding(folder: Path) -> list[str]:
    """Re-encode submitted notebooks that are not UTF-8 (e.g. saved as Latin-1) as UTF-8.

    The original is kept as ``<name>.ipynb.orig``. Returns the repaired file names.
    """
    repaired = []
    for path in folder.glob("*.ipynb"):
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            path.with_suffix(".ipynb.orig").write_bytes(raw)
            path.write_text(raw.decode("cp1252", errors="replace"), encoding="utf-8")
            repaired.append(path.name)
    return repaired


def autograde_each(root: Path, assignment: str, students: list[str], sandbox: bool, timeout: int = 900) -> dict[str, str]:
    """Autograde every student in its own nbgrader process (and sandboxed kernel).

    Returns:
        ``{student: problem}`` for submissions nbgrader could not grade (e.g. invalid JSON);
        they keep 0 points for the notebook.
    """
    from . import sandbox as sb

    problems = {}
    base = Path(tempfile.mkdtemp(prefix="fsl-grading-", dir="/run" if os.path.isdir("/run") and os.access("/run", os.W_OK) else None))
    try:
        args, env = [], {}
        if sandbox:
            os.chmod(base, 0o711)
            sb.write_kernelspec(base / "jupyter")
            ipc = base / "ipc"
            ipc.mkdir(mode=0o1777)
            os.chmod(ipc, 0o1777)
            args = [f"--Execute.kernel_name={sb.KERNEL_NAME}", "--KernelManager.transport=ipc", f"--KernelManager.ip={ipc}/kernel"]
            env = {"JUPYTER_PATH": str(base / "jupyter"), "FSL_SANDBOX_BASE": str(base)}
        for student in students:
            for name in normalize_encoding(root / "grading" / "submitted" / student / assignment):
                print(f"{student}: {name} was not UTF-8; re-encoded (original kept as {name}.orig)")
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "nbgrader", "autograde", assignment, f"--student={student}", "--force", *args],
                    cwd=root, env={**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
                                   "FSL_COURSE_ROOT": str(root), **env},
                    text=True, capture_output=True, timeout=timeout, start_new_session=True,
                )
                sys.stderr.write(proc.stderr[-5000:])
                if proc.returncode != 0:
                    lines = [l for l in proc.stderr.splitlines() if "ERROR" in l or "Error" in l]
                    problems[student] = (lines[-1] if lines else f"nbgrader exit {proc.returncode}")[-300:]
            except subprocess.TimeoutExpired:
                problems[student] = f"grading took longer than {timeout} s and was stopped"
            finally:
                _kill_leftovers(str(base))
                shutil.rmtree(base / "work", ignore_errors=True)
    finally:
        _kill_leftovers(str(base))
        shutil.rmtree(base, ignore_errors=True)
    return problems


def grade(root: Path, assignment: str, csv: Path | None = None, sandbox: bool | None = None) -> Path:
    """Autograde, write feedback and export grades for every submission of ``assignment``.

    Args:
        sandbox: run each kernel isolated (:mod:`.sandbox`); default: when this machine
            can (Linux, root).
    """
    from . import sandbox as sb

    submitted = sorted((root / "grading" / "submitted").glob(f"*/{assignment}"))
    if not submitted:
        raise FileNotFoundError(
            f"no submissions in {root / 'grading' / 'submitted'}/<student>/{assignment}/: copy each student's folder there first"
        )
    if sandbox is None:
        sandbox = sb.available()
    if not sandbox:
        print("WARNING: grading without the sandbox (needs Linux and root): student code runs with your rights.", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="fsl-release-") as tmp:
        release(root, assignment, Path(tmp))  # puts the assignment and its grade cells in the gradebook
    start = time.perf_counter()
    students = [p.parent.name for p in submitted]
    problems = autograde_each(root, assignment, students, sandbox)
    print(f"autograded {len(students)} submission(s) in {time.perf_counter() - start:.0f} s" + (" (sandboxed)" if sandbox else ""))
    for student, problem in problems.items():
        print(f"NOT GRADED {student}: {problem}")
    (root / "grading" / "not_graded.json").write_text(json.dumps(problems, indent=1))
    nbgrader(root, "generate_feedback", assignment, "--force", check=False)
    csv = csv or root / "grading" / "grades.csv"
    nbgrader(root, "export", f"--to={csv}")
    print(f"grades: {csv}\nfeedback: {root / 'grading' / 'feedback'}/<student>/{assignment}/")
    return csv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fsl_utils.grading", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("release", "grade"))
    parser.add_argument("assignment", help="assignment id, e.g. protonet")
    parser.add_argument("--root", type=Path, default=None, help="course directory (default: found from the current folder)")
    parser.add_argument("--no-sandbox", action="store_true", help="run student code unisolated (machines without Linux/root)")
    args = parser.parse_args(argv)
    root = (args.root or course_root()).resolve()
    if args.command == "release":
        print(f"release: {release(root, args.assignment)}")
    else:
        grade(root, args.assignment, sandbox=False if args.no_sandbox else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
