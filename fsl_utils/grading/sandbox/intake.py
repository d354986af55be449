"""Submissions are data: copy what a submission holds, never follow a path it carries.

nbgrader copies a submission folder with ``shutil`` as whoever grades (often root), following
symbolic links: a link in an LMS zip to ``solutions/<assignment>/hidden_tests.py``, another
student's folder or ``/etc/shadow`` would become a readable file of the autograded copy. A named
pipe (FIFO) would hang the copy, a device file would be read from, a hard link would carry
another file's contents.

:func:`take_in` therefore builds the copy nbgrader grades from (the ``submitted_directory`` of
the batch, :mod:`.pipeline`) itself: it walks the submission without following anything
(``lstat``, ``O_NOFOLLOW``) and copies regular files only, each at most :data:`~fsl_utils.course.check.MAX_SUBMITTED_BYTES`
(notebooks :data:`MAX_NOTEBOOK_BYTES`). Everything else is refused with a reason — the rest of
the submission is graded, and the reasons reach ``grading/refused_files.json``, the log and the
student's feedback (:mod:`.feedback`). The instructor's ``grading/submitted/`` is never changed.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from fsl_utils.course.check import MAX_SUBMITTED_BYTES

#: Largest file beside the notebook (e.g. trained weights), as ``fsl_utils.course.check`` tells students.
#: Largest notebook (outputs with figures included).
MAX_NOTEBOOK_BYTES = 32 * 2**20
MAX_FILES = 200
MAX_DEPTH = 6
REFUSED_FILE = "refused_files.json"

_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device file", stat.S_IFBLK: "a block device file",
          stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a symbolic link"}


@dataclass
class Intake:
    """What :func:`take_in` did: the files copied, the entries refused (relative path -> reason)
    and, when nothing can be graded, why."""

    copied: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    fatal: str | None = None
    #: where each refused symbolic link pointed (for the instructor's log only: never shown to students)
    links: dict[str, str] = field(default_factory=dict)


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def _inventory(folder: Path) -> dict[tuple[int, int], int]:
    """How many names each (device, inode) of a regular file has inside ``folder``."""
    counts: dict[tuple[int, int], int] = {}
    for dirpath, dirnames, filenames in os.walk(folder):  # os.walk does not follow links by default
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                counts[(st.st_dev, st.st_ino)] = counts.get((st.st_dev, st.st_ino), 0) + 1
    return counts


def take_in(source: Path, dest: Path) -> Intake:
    """Copy the submission ``source`` into ``dest`` (created), regular files only.

    Refused: symbolic links (not followed), hard links to files outside the submission, named
    pipes, device files, sockets, files over the size limits, folders nested deeper than
    :data:`MAX_DEPTH`, entries beyond :data:`MAX_FILES`. ``source`` itself must be a folder
    and no link, nor may any folder above it inside ``grading/submitted`` be one."""
    result = Intake()
    try:
        st = os.lstat(source)
    except OSError as err:
        result.fatal = f"the submission folder cannot be read ({err.strerror})"
        return result
    if stat.S_ISLNK(st.st_mode) or stat.S_ISLNK(os.lstat(source.parent).st_mode):
        result.fatal = "the submission folder is a symbolic link (not followed); copy the student's files there instead"
        return result
    if not stat.S_ISDIR(st.st_mode):
        result.fatal = "the submission is not a folder"
        return result
    names = _inventory(source)
    dest.mkdir(parents=True, exist_ok=True)
    _copy_folder(source, dest, Path(), names, result, depth=0)
    if not any(name.endswith(".ipynb") for name in result.copied):
        notebooks = {k: v for k, v in result.refused.items() if k.endswith(".ipynb")}
        result.fatal = ("no notebook could be taken in: " + "; ".join(f"{k}: {v}" for k, v in notebooks.items())) if notebooks else "the submission holds no notebook"
    return result


def _copy_folder(source: Path, dest: Path, rel: Path, names: dict, result: Intake, depth: int) -> None:
    with os.scandir(source / rel) as entries:
        listing = sorted(entries, key=lambda e: e.name)
    for entry in listing:
        path = rel / entry.name
        key = path.as_posix()
        if len(result.copied) + len(result.refused) >= MAX_FILES:
            result.refused[key] = f"more than {MAX_FILES} files in the submission; the rest was not taken in"
            return
        st = entry.stat(follow_symlinks=False)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFLNK:
            try:
                result.links[key] = os.readlink(source / path)[:300]
            except OSError:
                result.links[key] = "?"
            result.refused[key] = "a symbolic link: submissions must contain files, not links; it was not followed"
        elif kind == stat.S_IFDIR:
            if depth >= MAX_DEPTH:
                result.refused[key] = f"a folder nested deeper than {MAX_DEPTH} levels"
                continue
            (dest / path).mkdir(exist_ok=True)
            _copy_folder(source, dest, path, names, result, depth + 1)
        elif kind == stat.S_IFREG:
            reason = _copy_file(source / path, dest / path, key, names)
            if reason is None:
                result.copied.append(key)
            else:
                result.refused[key] = reason
        else:
            result.refused[key] = f"{_KINDS.get(kind, 'a special file')}: only regular files are graded"


def _copy_file(src: Path, dst: Path, name: str, names: dict) -> str | None:
    """Copy one regular file through a descriptor opened without following links; the reason
    it was refused, or None."""
    limit = MAX_NOTEBOOK_BYTES if name.endswith(".ipynb") else MAX_SUBMITTED_BYTES
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as err:
        return f"cannot be opened ({err.strerror}); links and special files are not followed"
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file when it was opened"
        if st.st_nlink > names.get((st.st_dev, st.st_ino), 0):
            return "a hard link to a file outside the submission: its contents belong to another file and were not copied"
        if st.st_size > limit:
            return f"{_mb(st.st_size)}, larger than the {_mb(limit)} a submitted {'notebook' if limit == MAX_NOTEBOOK_BYTES else 'file'} may have"
        data = f.read(limit + 1)
    if len(data) > limit:
        return f"larger than the {_mb(limit)} limit"
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    return None
