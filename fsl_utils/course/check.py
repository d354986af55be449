"""``python -m fsl_utils.course.check assignments/<name>``: check a homework before submitting it.

Reports, each with what to do about it:

* the notebook is not valid UTF-8 JSON;
* grade cells (tests, answers) missing, duplicated, turned into another cell type, or test
  and read-only cells edited (nbgrader restores them, so your edits would be lost);
* answers still unanswered (``raise NotImplementedError()`` left in place);
* ``skip_training = False`` left on (the grader loads your weights instead of training);
* a required file (e.g. ``protonet.pt``) missing, too large or not loadable with
  ``torch.load(..., weights_only=True)``;
* whether the notebook runs top to bottom in a fresh kernel (``--no-run`` skips this).

The last line says which points the check could verify (the visible tests) and how many are
left to the hidden tests and to hand grading, e.g. "Visible tests pass (5 of 20 autograded
points); 15 points are checked by hidden tests after you submit, 5 points of written answers
are graded by hand." Needs only the course's student install (no nbgrader).

Exit status 0 when everything is fine, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Written into every release (fsl_utils.grading.release): the grade cells' hashes and what a
#: submission must contain.
MANIFEST = "manifest.json"
#: Largest file a student may submit beside the notebook (e.g. trained weights); the release
#: manifest records it, the grader refuses larger files, the hidden tests check the weights' size.
MAX_SUBMITTED_BYTES = 2 * 1024 * 1024
_SKIP_FALSE = re.compile(r"^\s*skip_training\s*=\s*False\b", re.MULTILINE)


@dataclass
class Report:
    """Problems (must fix) and notes (worth knowing) found in one assignment folder."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    points: Points | None = None
    ran: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def verdict(self) -> str:
        """The last line: what the check could verify and what is left to the grader."""
        if not self.ok:
            return f"{len(self.problems)} problem(s): fix them before submitting."
        if self.points is None:
            return "No problems found."
        p = self.points
        what = "Visible tests pass" if self.ran else "No problems found; the visible tests were not run (--no-run)"
        line = f"{what} ({p.visible} of {p.autograded} autograded points); {p.hidden} points are checked by hidden tests after you submit"
        if p.manual:
            line += f", {p.manual} points of written answers are graded by hand"
        return line + "."


@dataclass(frozen=True)
class Points:
    """An assignment's points by who checks them (from the release manifest)."""

    visible: int
    hidden: int
    manual: int

    @property
    def autograded(self) -> int:
        return self.visible + self.hidden

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> Points:
        cells = [c for cells in manifest["notebooks"].values() for c in cells if c["grade"]]
        tests = [c for c in cells if not c["solution"]]
        return cls(visible=sum(c["points"] for c in tests if c["visible_tests"]),
                   hidden=sum(c["points"] for c in tests if not c["visible_tests"]),
                   manual=sum(c["points"] for c in cells if c["solution"]))


def _load(path: Path, report: Report) -> dict[str, Any] | None:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        report.problems.append(f"{path.name} is not UTF-8 text (byte {err.start}): save it again from Jupyter.")
        return None
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as err:
        report.problems.append(f"{path.name} is not valid JSON (line {err.lineno}): restore it from a checkpoint or the release.")
        return None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        report.problems.append(f"{path.name} is not a Jupyter notebook (no cell list).")
        return None
    return nb


def check_cells(name: str, nb: dict[str, Any], expected: list[dict[str, Any]], report: Report) -> None:
    """Compare the notebook's grade cells with the release manifest (SHA-256 of each released source)."""
    seen: dict[str, int] = {}
    cells = {}
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid:
            seen[gid] = seen.get(gid, 0) + 1
            cells.setdefault(gid, cell)
    for gid, count in seen.items():
        if count > 1:
            report.problems.append(f"{name}: cell '{gid}' appears {count} times (copied cell): delete the copies, keep one.")
    for spec in expected:
        gid = spec["grade_id"]
        cell = cells.get(gid)
        if cell is None:
            report.problems.append(f"{name}: cell '{gid}' is missing (deleted?): copy it back from the release or a fresh download.")
            continue
        if cell.get("cell_type") != spec["cell_type"]:
            report.problems.append(f"{name}: cell '{gid}' was changed to a {cell.get('cell_type')} cell; change it back to {spec['cell_type']}.")
            continue
        source = cell.get("source", "")
        source = source if isinstance(source, str) else "".join(source)
        unchanged = hashlib.sha256(source.encode("utf-8")).hexdigest() == spec["source_sha256"]
        if spec["locked"] or (spec["grade"] and not spec["solution"]):
            if not unchanged:
                report.problems.append(f"{name}: read-only/test cell '{gid}' was edited; undo the edit (it is restored before grading).")
        elif spec["solution"] and unchanged:
            report.problems.append(f"{name}: answer '{gid}' is still empty: write your answer in it.")
        elif spec["solution"] and spec["cell_type"] == "code" and "raise NotImplementedError" in source:
            report.problems.append(f"{name}: answer '{gid}' still raises NotImplementedError: replace that line by your code.")
    for cell in nb["cells"]:
        source = cell.get("source", "")
        source = source if isinstance(source, str) else "".join(source)
        if cell.get("cell_type") == "code" and _SKIP_FALSE.search(source):
            report.problems.append(f"{name}: skip_training = False is still set: set it to True after training, so that grading loads your weights.")


def check_files(folder: Path, manifest: dict[str, Any], report: Report) -> None:
    """Required files (weights) present, small enough, and loadable without pickled code."""
    import torch

    for fname in manifest.get("required_files", []):
        path = folder / fname
        if not path.is_file():
            report.problems.append(f"{fname} is missing: train with skip_training = False (it is saved beside the notebook) and submit it.")
            continue
        size, limit = path.stat().st_size, manifest.get("max_file_bytes", MAX_SUBMITTED_BYTES)
        if size > limit:
            report.problems.append(f"{fname} is {size / 2**20:.1f} MB (limit {limit / 2**20:.0f} MB): save only model.state_dict().")
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 (any failure is the same advice)
            report.problems.append(f"{fname} cannot be loaded with weights_only=True ({type(err).__name__}): save it with torch.save(model.state_dict(), '{fname}').")
            continue
        if not isinstance(state, dict):
            report.problems.append(f"{fname} holds a {type(state).__name__}, not a state_dict: save model.state_dict().")


def run_notebook(path: Path, report: Report, timeout: int) -> None:
    """Execute a copy of the notebook in a fresh kernel, in its folder; report failing cells."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except Exception as err:  # noqa: BLE001 (dead kernel, timeout)
        report.problems.append(f"{path.name} did not run to the end: {type(err).__name__}: {str(err)[:300]}")
        return
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                gid = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {i + 1}")
                report.problems.append(f"{path.name}: {gid} fails: {out.ename}: {str(out.evalue)[:300]}")
    if report.ok:
        report.notes.append(f"{path.name} runs top to bottom without errors.")


def check(folder: str | Path, run: bool = True, timeout: int = 600) -> Report:
    """Check the assignment folder ``folder`` (with the release's ``manifest.json``)."""
    folder = Path(folder)
    report = Report()
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        report.problems.append(f"{manifest_path} not found: run the check on the assignment folder you downloaded (e.g. assignments/protonet).")
        return report
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    loaded = {}
    for name, expected in manifest["notebooks"].items():
        path = folder / name
        if not path.is_file():
            report.problems.append(f"{name} is missing from {folder}: keep the notebook's name.")
            continue
        nb = _load(path, report)
        if nb is not None:
            check_cells(name, nb, expected, report)
            loaded[name] = path
    check_files(folder, manifest, report)
    report.points = Points.of(manifest)
    if run and report.ok:
        for path in loaded.values():
            run_notebook(path, report, timeout)
        report.ran = True
    elif run:
        report.notes.append("Not executed: fix the problems above first (or use --no-run).")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fsl_utils.course.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the assignment folder, e.g. assignments/protonet")
    parser.add_argument("--no-run", action="store_true", help="do not execute the notebook")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell when executing")
    args = parser.parse_args(argv)
    report = check(args.folder, run=not args.no_run, timeout=args.timeout)
    for line in report.problems:
        print(f"PROBLEM: {line}")
    for line in report.notes:
        print(f"ok: {line}")
    print(report.verdict())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
