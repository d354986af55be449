"""Where datasets and caches live, and the errors raised when data is missing."""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, NamedTuple


class DataNotFoundError(FileNotFoundError):
    """A dataset is not on disk; the message says where it was looked for and how to get it."""


class CorruptDataError(RuntimeError):
    """A dataset file exists but cannot be read or is incomplete; the message names the file."""


#: The ``[project] name`` in the course's ``pyproject.toml``: how a course checkout is recognised.
PROJECT_NAME = "fsl-course"
#: Where the data goes when the package is used outside any course checkout (documented in
#: docs/students.md): e.g. installed from its repository into a JupyterHub image or Colab.
FALLBACK_DATA_DIR = Path("~") / "fsl-course-data"
_PROJECT_LINE = re.compile(r'^\s*name\s*=\s*["\']' + re.escape(PROJECT_NAME) + r'["\']\s*$', re.MULTILINE)
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


class DataLocation(NamedTuple):
    """The dataset folder and, in words, why it is that folder (quoted by error messages)."""

    path: Path
    reason: str


def is_course_checkout(folder: Path) -> bool:
    """True when ``folder`` holds this course's ``pyproject.toml`` (a clone or a student copy)."""
    try:
        return bool(_PROJECT_LINE.search((folder / "pyproject.toml").read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return False


def course_checkout(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The course checkout a notebook or command works in, or None outside any checkout.

    The nearest folder at or above ``start`` (default: the current folder) that is a course
    checkout; failing that, the checkout that holds the imported ``fsl_utils`` package (an
    editable install, or a virtual environment inside the checkout). Jupyter starts every
    kernel in the notebook's own folder (``lectures/``, ``assignments/protonet/``), so the
    working folder alone is not the course root.
    """
    here = Path(start if start is not None else os.getcwd()).expanduser().resolve()
    for base in (here, _PACKAGE_DIR):
        for folder in (base, *base.parents):
            if is_course_checkout(folder):
                return folder
    return None


def locate_data(start: str | os.PathLike[str] | None = None) -> DataLocation:
    """The dataset folder and how it was chosen (see :func:`data_root`)."""
    env = os.environ.get("FSL_DATA_DIR")
    if env:
        return DataLocation(Path(env).expanduser(), "FSL_DATA_DIR is set")
    where = Path(start if start is not None else os.getcwd()).expanduser().resolve()
    checkout = course_checkout(where)
    if checkout is not None:
        return DataLocation(checkout / "data", f"FSL_DATA_DIR is unset; the course checkout {checkout} (found from {where}) keeps its data in data/")
    return DataLocation(FALLBACK_DATA_DIR.expanduser(), f"FSL_DATA_DIR is unset and {where} is not inside a course checkout, so the default {FALLBACK_DATA_DIR}")


def data_root() -> Path:
    """The dataset folder, the same from every working folder.

    ``$FSL_DATA_DIR`` when set; otherwise ``data/`` of the course checkout (found by
    :func:`course_checkout` from the working folder, then from the package's location);
    outside any checkout ``~/fsl-course-data``. Datasets use torchvision's extracted layouts
    below it (``omniglot-py/``, ``cifar-10-batches-py/``).
    """
    return locate_data().path


def cache_dir() -> Path:
    """Folder for derived caches: ``$FSL_CACHE_DIR``, else ``~/.cache/fsl_utils``.

    Kept apart from the data root because a shared data folder is often read-only.
    """
    env = os.environ.get("FSL_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fsl_utils"
    return base.expanduser()


#: The names of the course's cache files in :func:`cache_dir` (Omniglot tensors, image features,
#: text embeddings): what the grader may open to its sandboxed kernels (``grading.sandbox.isolation.share_cache``).
CACHE_FILES = ("omniglot-*.pt", "features-*.pt", "text-*.pt")


def write_cache(obj: Any, path: Path) -> bool:
    """Save ``obj`` to the cache file ``path`` with ``torch.save``, atomically and best effort.

    The file appears complete or not at all (written under a unique temporary name in the
    same folder, then renamed), so concurrent writers never clash. It gets the permissions
    of an ordinary new file (0666 minus the umask; ``mkstemp`` alone would leave it private
    to its owner, and the grader's sandboxed kernels, which run under other user ids when
    grading as root, would decode the dataset again in every submission). A cache that cannot be
    written (read-only or full disk, e.g. inside the grading sandbox) only costs time: it
    warns once and returns False instead of failing the caller.
    """
    import torch

    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
        return True
    except OSError as err:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        warnings.warn(f"could not write the cache file {path} ({err.strerror or err}); continuing without it. "
                      "Set FSL_CACHE_DIR to a writable folder to keep the cache.", RuntimeWarning, stacklevel=2)
        return False


def _umask() -> int:
    """The process's umask, read without changing it where Linux reports it (``os.umask`` can only
    be read by setting it, which races with other threads creating files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def drop_cache(path: Path) -> None:
    """Remove a stale or damaged cache file if possible (a read-only cache is left alone)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def missing_data_error(dataset: str, expected: Path) -> DataNotFoundError:
    """The one error for a dataset that is not on disk: where it looked, why there, what to do."""
    where = locate_data()
    if os.environ.get("FSL_DATA_DIR"):
        todo = ("Point FSL_DATA_DIR at the folder that holds omniglot-py/ and cifar-10-batches-py/, or unset it "
                "to use the course's own data/ folder.")
    else:
        checkout = course_checkout()
        fetch = f"`make data` in {checkout}" if checkout else "`python -m fsl_utils.data.download`"
        todo = (f"Run {fetch} (needs internet) to download the datasets there, or set FSL_DATA_DIR to a folder "
                "that already holds them.")
    return DataNotFoundError(
        f"{dataset} was not found at {expected}. The data folder is {where.path.resolve()} because {where.reason}. {todo}"
    )
