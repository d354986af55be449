"""Generating the student release: what must never be released, and staleness checks."""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any

from ..course.check import MANIFEST, MAX_SUBMITTED_BYTES

#: Files of ``solutions/<assignment>/`` that nbgrader would copy but students must not get:
#: reference weights. (``hidden_tests.py`` is excluded by ``CourseDirectory.ignore``.)
UNRELEASED = ("*.pt", "*.pth", "hidden_tests.py")


def _has_code(source: str) -> bool:
    return any(line.strip() and not line.lstrip().startswith("#") for line in source.splitlines())


def manifest(release: Path, removed: list[Path]) -> dict[str, Any]:
    """The grade cells of every released notebook and the files students must add.

    Each grade cell records what ``fsl_utils.course.check`` compares without nbgrader (students do
    not install it): the SHA-256 of its released source, and for test cells whether any
    test is visible in the release (code left after the hidden region was removed; the other
    test cells' points are checked only by hidden tests, after submission).
    """
    import hashlib

    from nbformat import read

    notebooks = {}
    for path in sorted(release.glob("*.ipynb")):
        nb = read(path, as_version=4)
        cells = []
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader")
            if meta and meta.get("grade_id"):
                cells.append({
                    "grade_id": meta["grade_id"], "cell_type": cell.cell_type, "grade": bool(meta.get("grade")),
                    "solution": bool(meta.get("solution")), "locked": bool(meta.get("locked")),
                    "points": meta.get("points", 0), "visible_tests": _has_code(cell.source),
                    "source_sha256": hashlib.sha256(cell.source.encode("utf-8")).hexdigest(),
                })
        notebooks[path.name] = cells
    required = sorted({p.name for p in removed if p.suffix in (".pt", ".pth")})
    return {"notebooks": notebooks, "required_files": required, "max_file_bytes": MAX_SUBMITTED_BYTES}


def remove_unreleased(assignment: str, student: Any = None, notebooks: list[str] | None = None, release_folder: str = "assignments") -> list[Path]:
    """nbgrader ``GenerateAssignment.post_convert_hook``: delete :data:`UNRELEASED` files
    from the freshly generated release of ``assignment`` and write its :data:`MANIFEST`.

    Args:
        assignment: the assignment id.
        student, notebooks: as passed by nbgrader (``notebooks`` are the source paths, in
            ``<root>/solutions/<assignment>/``).
        release_folder: name of the release folder beside ``solutions/``.

    Returns:
        The removed paths.
    """
    if not notebooks:
        return []
    root = Path(notebooks[0]).resolve().parents[2]
    release = Path(os.environ.get("FSL_RELEASE_DIR", root / release_folder)) / Path(notebooks[0]).parent.name
    removed = []
    for path in sorted(release.rglob("*")) if release.is_dir() else []:
        if path.is_file() and any(fnmatch.fnmatch(path.name, pattern) for pattern in UNRELEASED):
            path.unlink()
            removed.append(path)
    if release.is_dir():
        (release / MANIFEST).write_text(json.dumps(manifest(release, removed), indent=1) + "\n", encoding="utf-8")
    return removed


def comparable_cells(notebook: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """A notebook's cells without volatile fields (ids, outputs, execution counts).

    Two releases generated from the same source give equal lists.
    """
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    cells = []
    for cell in nb["cells"]:
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        meta = cell.get("metadata", {})
        cells.append({"cell_type": cell["cell_type"], "source": source, "nbgrader": meta.get("nbgrader"),
                      "editable": meta.get("editable"), "deletable": meta.get("deletable")})
    return cells
