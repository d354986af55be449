"""Reading and filling nbgrader notebooks: solution code by grade id, and the reference
implementation as an importable namespace (what ``bench/protonet.py`` runs).
"""

from __future__ import annotations

import json
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SOLUTION = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.MULTILINE)


def read_notebook(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The notebook's JSON (cell sources joined to strings)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if not isinstance(cell["source"], str):
            cell["source"] = "".join(cell["source"])
    return nb


def grade_id(cell: Mapping[str, Any]) -> str | None:
    """The nbgrader grade id of ``cell`` (None for a cell nbgrader does not track)."""
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def solution_sources(path: str | os.PathLike[str]) -> dict[str, str]:
    """Code of every autograded answer cell of a source notebook, markers removed.

    Returns:
        ``{grade_id: source}`` for code cells with ``nbgrader.solution`` set.
    """
    out = {}
    for cell in read_notebook(path)["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and meta.get("solution"):
            out[meta["grade_id"]] = _SOLUTION.sub("", cell["source"] + "\n").rstrip() + "\n"
    return out


def fill_solutions(release: str | os.PathLike[str], answers: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the release notebook with the answer cells in ``answers`` replaced.

    Args:
        release: the student release notebook.
        answers: ``{grade_id: source}``; cells not named keep the release's stub.

    Returns:
        The notebook JSON (write it with ``json.dumps``).
    """
    nb = read_notebook(release)
    unknown = set(answers) - {grade_id(c) for c in nb["cells"]}
    if unknown:
        raise KeyError(f"no answer cells {sorted(unknown)} in {release}")
    for cell in nb["cells"]:
        gid = grade_id(cell)
        if gid in answers:
            cell["source"] = answers[gid]
    return nb


def load_reference(path: str | os.PathLike[str], setup_id: str = "setup") -> types.SimpleNamespace:
    """Execute a source notebook's setup cell and its autograded answers, nothing else.

    The setup cell's prints and seeding run too; training, plots and tests do not.

    Returns:
        A namespace with everything those cells define (e.g. ``ProtoNetEncoder``).
    """
    nb = read_notebook(path)
    namespace: dict[str, Any] = {"__name__": "fsl_reference"}
    setup = [c["source"] for c in nb["cells"] if grade_id(c) == setup_id]
    for source in setup + list(solution_sources(path).values()):
        exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 (instructor's own notebook)
    return types.SimpleNamespace(**{k: v for k, v in namespace.items() if not k.startswith("__")})
