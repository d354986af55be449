"""The term's data in the gradebook: the roster and the due dates.

* ``make roster FILE=students.csv``: the students (``id`` — the student's login, the folder
  name under ``grading/submitted/`` — and optionally ``first_name``, ``last_name``,
  ``email``, ``lms_user_id``), so that ``grades.csv`` carries names and emails and students
  who submitted nothing are listed with 0 points.
* ``make deadlines FILE=deadlines.csv``: each assignment's due date (``name``, ``duedate``
  with a time zone), which nbgrader compares with each submission's ``timestamp.txt`` to
  compute late penalties (:mod:`.late`).

Both files are checked first, with errors that name the file, the line and the fix, then
imported with nbgrader's own importers (``nbgrader db student import`` / ``nbgrader db
assignment import``); importing again updates the rows (a student's grades are kept).
"""

from __future__ import annotations

import csv
import io
import re
import sys
import tempfile
from pathlib import Path

from .command import nbgrader

#: Columns of nbgrader's student table (``nbgrader db student import --help``).
STUDENT_COLUMNS = ("id", "first_name", "last_name", "email", "lms_user_id")
ASSIGNMENT_COLUMNS = ("name", "duedate")
#: A student id is a login name and a folder name; ``+`` separates fields in the names of
#: nbgrader's exchange, so it is refused too.
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
EXAMPLE_DUE = "2026-03-02 23:59:00 Europe/Helsinki"


class CsvError(ValueError):
    """A roster or deadlines file that cannot be imported; the message says why and what to do."""


def _rows(path: Path, key: str, known: tuple[str, ...], what: str) -> tuple[list[str], list[tuple[int, dict[str, str]]], str]:
    """(columns, [(line, row)], text without a byte-order mark) of a CSV file with a ``key`` column."""
    if not path.is_file():
        raise CsvError(f"{path}: no such file (give the {what} file with FILE=path/to/file.csv)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as err:
        raise CsvError(f"{path}: not UTF-8 text ({err}); save it as 'CSV UTF-8'") from err
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    if key not in columns:
        raise CsvError(f"{path}: no column '{key}' in the first line (found: {', '.join(columns) or 'nothing'}); "
                       f"the columns nbgrader reads are {', '.join(known)} — rename the {what}'s column to '{key}'")
    unknown = [c for c in columns if c not in known]
    if unknown:
        print(f"{path}: columns {', '.join(unknown)} are not nbgrader's and are ignored (nbgrader reads {', '.join(known)})", file=sys.stderr)
    rows = [(i + 2, {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}) for i, row in enumerate(reader)]
    if not rows:
        raise CsvError(f"{path}: no rows under the header line")
    return columns, rows, text


def check_roster(path: Path) -> list[str]:
    """Check a roster CSV; returns the student ids. Raises :class:`CsvError`."""
    return _check_roster(path)[0]


def _check_roster(path: Path) -> tuple[list[str], str]:
    _, rows, text = _rows(path, "id", STUDENT_COLUMNS, "student id")
    seen: dict[str, int] = {}
    for line, row in rows:
        sid = row["id"]
        if not STUDENT_ID.match(sid):
            raise CsvError(f"{path}, line {line}: student id {sid!r} is not a login name (letters, digits, '.', '_', '@', '-'; "
                           "no spaces, '/' or '+'): use the students' hub or LMS login names")
        if sid in seen:
            raise CsvError(f"{path}, line {line}: student id {sid!r} again (first on line {seen[sid]}): keep one row per student")
        seen[sid] = line
    return list(seen), text


def due_date_utc(text: str):
    """The UTC time of a due date as nbgrader reads it; raises ValueError without a time zone."""
    from dateutil.tz import gettz
    from nbgrader.utils import parse_utc

    parts = text.split(" ")
    if len(parts) == 3:
        zone_ok = parts[2].lstrip("+-").isdigit() or gettz(parts[2]) is not None
    else:
        import dateutil.parser

        zone_ok = dateutil.parser.parse(text).tzinfo is not None
    if not zone_ok:
        raise ValueError("no time zone (nbgrader would read it as UTC)")
    return parse_utc(text)


def check_deadlines(path: Path, root: Path) -> dict[str, str]:
    """Check a deadlines CSV against the assignments in ``root/solutions``; returns
    ``{assignment: due date in UTC}``. Raises :class:`CsvError`."""
    return _check_deadlines(path, root)[0]


def _check_deadlines(path: Path, root: Path) -> tuple[dict[str, str], str]:
    _, rows, text = _rows(path, "name", ASSIGNMENT_COLUMNS, "assignment name")
    assignments = sorted(p.name for p in (root / "solutions").iterdir() if p.is_dir()) if (root / "solutions").is_dir() else []
    due = {}
    for line, row in rows:
        name, when = row["name"], row.get("duedate", "")
        if name not in assignments:
            raise CsvError(f"{path}, line {line}: no assignment {name!r} in {root / 'solutions'} (assignments: {', '.join(assignments)})")
        if name in due:
            raise CsvError(f"{path}, line {line}: {name!r} again: keep one due date per assignment")
        try:
            due[name] = f"{due_date_utc(when)} UTC"
        except (ValueError, OverflowError) as err:
            raise CsvError(f"{path}, line {line}: due date {when!r} of {name}: {err}; write it as '{EXAMPLE_DUE}' "
                           "(date, time, and an IANA time zone or a UTC offset such as +0200)") from err
    return due, text


def _import(root: Path, path: Path, text: str, table: str) -> str:
    """``nbgrader db <table> import`` of ``text``; returns nbgrader's log (one line per imported row)."""
    with tempfile.TemporaryDirectory(prefix="fsl-import-") as tmp:
        clean = Path(tmp) / path.name  # the same rows without a byte-order mark, which nbgrader would misread
        clean.write_text(text, encoding="utf-8")
        return nbgrader(root, "db", table, "import", str(clean)).stderr


def import_roster(root: Path, path: Path) -> list[str]:
    """Check ``path`` and import it with ``nbgrader db student import``; returns the ids."""
    path = path.resolve()
    ids, text = _check_roster(path)
    log = _import(root, path, text, "student")
    missing = [sid for sid in ids if f"Student with id '{sid}'" not in log]
    if missing:
        raise CsvError(f"{path}: `nbgrader db student import` did not import {', '.join(missing)}; see nbgrader's log above")
    print(f"roster: {len(ids)} student(s) imported from {path} into the gradebook")
    return ids


def import_deadlines(root: Path, path: Path) -> dict[str, str]:
    """Check ``path`` and import it with ``nbgrader db assignment import``; returns the due dates (UTC)."""
    path = path.resolve()
    due, text = _check_deadlines(path, root)
    log = _import(root, path, text, "assignment")
    missing = [name for name in due if not re.search(rf"Assignment with name '{re.escape(name)}': {{[^}}]*'duedate': '", log)]
    if missing:
        raise CsvError(f"{path}: `nbgrader db assignment import` set no due date for {', '.join(missing)}; see nbgrader's log above")
    for name, when in due.items():
        print(f"deadline: {name} due {when}")
    return due
