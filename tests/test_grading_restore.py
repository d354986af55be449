"""``fsl_utils.grading.restore.RestoreCells`` on the real release and gradebook of the grading
tests (the ``graded_course`` fixture): test cells come back with their hidden tests, and only a
cell the student changed is reported — nbgrader's own ``OverwriteCells`` reports every released
cell with hidden tests (jupyter/nbgrader#1961)."""

from __future__ import annotations

import logging

import nbformat
from nbgrader.api import Gradebook
from nbgrader.preprocessors import OverwriteCells

from fsl_utils.grading.restore import RestoreCells

ASSIGNMENT = "protonet"


def restore(graded_course, cls, notebook, caplog) -> list[str]:
    """Run ``cls`` over every cell of ``notebook`` against the course's gradebook; its warnings."""
    caplog.clear()
    logger = logging.getLogger(f"test-restore-{cls.__name__}")
    preprocessor = cls(log=logger)
    preprocessor.notebook_id = preprocessor.assignment_id = ASSIGNMENT
    with caplog.at_level(logging.DEBUG, logger=logger.name), Gradebook(f"sqlite:///{graded_course['root'] / 'grading' / 'gradebook.db'}") as gb:
        preprocessor.gradebook = gb
        for i, cell in enumerate(notebook.cells):
            preprocessor.preprocess_cell(cell, {}, i)
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_cells_as_released_are_restored_silently(graded_course, caplog):
    source = nbformat.read(graded_course["root"] / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    locked_tests = {c.metadata.nbgrader["grade_id"]: c.source for c in source.cells
                    if c.metadata.get("nbgrader", {}).get("grade") and c.metadata["nbgrader"].get("locked")}
    hidden = {gid for gid, text in locked_tests.items() if "BEGIN HIDDEN TESTS" in text}
    assert len(hidden) >= 10  # the ProtoNet homework hides part of every test cell

    plain = restore(graded_course, OverwriteCells, nbformat.read(graded_course["released"], as_version=4), caplog)
    assert sorted(m.split()[4] for m in plain) == sorted(hidden)  # nbgrader: "Attribute 'checksum' for cell <id> has changed!"

    released = nbformat.read(graded_course["released"], as_version=4)
    assert restore(graded_course, RestoreCells, released, caplog) == []
    restored = {c.metadata.nbgrader["grade_id"]: c.source for c in released.cells if c.metadata.get("nbgrader", {}).get("grade_id") in locked_tests}
    assert restored == locked_tests  # hidden tests back, exactly the source


def test_an_edited_test_cell_is_still_reported_and_restored(graded_course, caplog):
    released = nbformat.read(graded_course["released"], as_version=4)
    tests = [c for c in released.cells if c.metadata.get("nbgrader", {}).get("grade") and c.metadata["nbgrader"].get("locked")]
    edited, retyped = tests[0], tests[1]
    edited.source = edited.source.replace("assert", "pass  #", 1)
    retyped.metadata.nbgrader["points"] = 100.0
    warnings = restore(graded_course, RestoreCells, released, caplog)
    assert len(warnings) == 2, warnings
    assert f"Attribute 'checksum' for cell {edited.metadata.nbgrader['grade_id']} has changed!" in warnings[0]
    assert f"Attribute 'points' for cell {retyped.metadata.nbgrader['grade_id']} has changed!" in warnings[1]
    assert "pass  #" not in edited.source and "BEGIN HIDDEN TESTS" in edited.source
    assert retyped.metadata.nbgrader["points"] != 100.0
