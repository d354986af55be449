"""Which submissions ``make grade`` must autograde: the new ones and the changed ones.

Autograding runs a student's notebook (about a minute each), and nbgrader marks every
hand-graded answer of a re-autograded submission as needing grading again. So ``make
grade`` autogrades a submission only when it has not been autograded yet, or when its
files changed since (a resubmission collected again, a late submission added to the
batch); everything else keeps its autograded notebook, its manual scores and comments.

What was autograded is recorded in ``grading/autograded_submissions.json``: per
assignment and student, the sha256 of the submitted folder's files (names and contents;
symlinks by their target text, never followed) as it was autograded. ``--force``
(``make grade FORCE=1``) autogrades everything again, e.g. after fixing a hidden test;
nbgrader keeps the manual scores then, flagged for review.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

RECORD = Path("grading") / "autograded_submissions.json"


def submission_fingerprint(folder: Path) -> str:
    """sha256 over the relative paths and contents of every file under ``folder``."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):  # never descends into symlinked folders
        dirnames.sort()
        here = Path(dirpath)
        links = [d for d in dirnames if (here / d).is_symlink()]
        for name in sorted(filenames + links):
            path = here / name
            digest.update(str(path.relative_to(folder)).encode("utf-8", "surrogateescape") + b"\0")
            if path.is_symlink():
                digest.update(b"symlink\0" + os.readlink(path).encode("utf-8", "surrogateescape"))
            elif path.is_file():
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
            digest.update(b"\0")
    return digest.hexdigest()


def _read(root: Path) -> dict[str, dict[str, dict[str, str]]]:
    path = root / RECORD
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err}): delete it to autograde every submission again") from err
    return data if isinstance(data, dict) else {}


def students_to_autograde(root: Path, assignment: str, students: Iterable[str], force: bool = False) -> list[str]:
    """The students of ``students`` whose submission of ``assignment`` is new or changed.

    A submission needs autograding when ``force`` is set, when it has no autograded folder
    (``grading/autograded/<student>/<assignment>``), when it was never recorded as
    autograded (also: it could not be graded last time) or when its files changed since.
    """
    recorded = _read(root).get(assignment, {})
    todo = []
    for student in students:
        autograded = root / "grading" / "autograded" / student / assignment
        entry = recorded.get(student, {})
        if force or not autograded.is_dir() or not entry:
            todo.append(student)
            continue
        current = submission_fingerprint(root / "grading" / "submitted" / student / assignment)
        if entry.get("sha256") != current:
            todo.append(student)
    return todo


def record_autograded(root: Path, assignment: str, students: Iterable[str]) -> None:
    """Remember the submitted files of ``students`` as autograded (call after autograding them)."""
    data = _read(root)
    mine = data.setdefault(assignment, {})
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for student in students:
        folder = root / "grading" / "submitted" / student / assignment
        mine[student] = {"sha256": submission_fingerprint(folder), "autograded": now}
    path = root / RECORD
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
