"""What the instructor-workflow tests share (tests/test_formgrader.py, tests/test_term.py):
a copy of a few students of the session's graded batch (the ``graded_course`` fixture), and
``make`` run in that copy as an instructor runs it in the course checkout.

The copy holds the course's Makefile, nbgrader_config.py, solutions/ and release of the
assignment, and the chosen students' submitted, autograded and feedback folders with the
gradebook, so tests can add manual grades, collect new submissions and grade again without
touching the batch the pipeline tests read (nor the repository's own ``grading/``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "protonet"


def copy_graded(graded_root: Path, dest: Path, students: list[str], assignment: str = ASSIGNMENT) -> Path:
    """Copy the course files and ``students``' grading folders of ``graded_root`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Makefile", "pyproject.toml"):  # copy2 keeps the times: make must not reinstall
        shutil.copy2(ROOT / name, dest / name)
    shutil.copy2(graded_root / "nbgrader_config.py", dest / "nbgrader_config.py")
    for folder in (f"solutions/{assignment}", f"assignments/{assignment}"):
        shutil.copytree(graded_root / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    grading = dest / "grading"
    grading.mkdir()
    for name in ("gradebook.db", "autograded_submissions.json"):
        shutil.copy2(graded_root / "grading" / name, grading / name)
    for student in students:
        for step in ("submitted", "autograded", "feedback"):
            shutil.copytree(graded_root / "grading" / step / student / assignment, grading / step / student / assignment, symlinks=True)
    return dest


def make_args(root: Path, target: str, **variables: str) -> list[str]:
    """``make -C root target VAR=value ...`` with this test run's Python environment as ``VENV``
    (never reinstalled: its install stamps are taken as up to date)."""
    venv = Path(sys.prefix)
    stamps = [a for stamp in ("", "-instructor", "-dev") for a in ("-o", f"{venv}/.fsl-course{stamp}-installed")]
    return ["make", "-C", str(root), target, f"VENV={venv}", *stamps, *(f"{k}={v}" for k, v in variables.items())]


def make(root: Path, target: str, timeout: float = 900, check: bool = True, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run :func:`make_args`; prints the time it took."""
    args = make_args(root, target, **variables)
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    print(f"make {target} {' '.join(f'{k}={v}' for k, v in variables.items())}: {time.perf_counter() - start:.1f} s (exit {proc.returncode})")
    if check and proc.returncode != 0:
        raise AssertionError(f"`make {target}` failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc
