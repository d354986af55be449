"""Where the course lives: the nbgrader course directory and an assignment's hidden tests."""

from __future__ import annotations

import os
from pathlib import Path


def course_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nbgrader course directory: ``$FSL_COURSE_ROOT``, else the nearest folder at or
    above ``start`` (default: the current folder) holding ``nbgrader_config.py`` and
    ``solutions/``.

    Raises:
        FileNotFoundError: none found (e.g. in a student's copy, which has no solutions).
    """
    env = os.environ.get("FSL_COURSE_ROOT")
    if env:
        return Path(env)
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "solutions").is_dir():
            return folder
    raise FileNotFoundError(
        f"No course directory (with nbgrader_config.py and solutions/) at or above {here}; hidden tests run only "
        "when grading (set FSL_COURSE_ROOT to the course checkout)."
    )


def hidden_tests_file(assignment: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``solutions/<assignment>/hidden_tests.py`` of the course at ``root`` (default: :func:`course_root`)."""
    return (Path(root) if root is not None else course_root()) / "solutions" / assignment / "hidden_tests.py"
