"""Restore grade cells from the gradebook, warning only about cells a student really changed.

nbgrader's ``OverwriteCells`` compares every locked cell of a submission with the checksum the
gradebook stored for it — but ``generate_assignment`` stores that checksum *before*
``ClearHiddenTests`` strips the hidden tests (jupyter/nbgrader#1961). Every released test cell
with hidden tests therefore "has changed" in every submission: an untouched ProtoNet notebook
logs 12 ``Attribute 'checksum' ... has changed!`` warnings, and the one warning that matters —
a student edited a test cell — drowns in them.

:class:`RestoreCells` restores exactly what ``OverwriteCells`` restores (source, cell type,
locked flag, points, missing cells), but a locked cell whose source is the *released* form of
the gradebook's source (its hidden regions removed as ``ClearHiddenTests`` removes them) is
restored with a debug message only: nothing was changed, the hidden tests are put back. Any
other difference keeps nbgrader's warning. ``nbgrader_config.py`` puts it in ``Autograde.sanitize_preprocessors``
in place of ``OverwriteCells``; ``OverwriteCells`` options (``add_missing_cells``) apply to it.
"""

from __future__ import annotations

from typing import Any

from nbformat.notebooknode import NotebookNode
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells


class RestoreCells(OverwriteCells):
    """``OverwriteCells`` without the false "checksum has changed" warning of cells with hidden tests."""

    _as_released = False

    def released_source(self, source: str) -> str:
        """``source`` as ``generate_assignment`` releases it: hidden test regions removed (by
        nbgrader's own ``ClearHiddenTests``, through its public preprocessor interface)."""
        cell = NotebookNode(cell_type="code", source=source, metadata=NotebookNode(nbgrader=NotebookNode(grade=True, solution=False, locked=True,
                                                                                                         grade_id="_", points=0)))
        return ClearHiddenTests(parent=self).preprocess_cell(cell, {}, 0)[0].source

    def preprocess_cell(self, cell: NotebookNode, resources: dict, cell_index: int) -> tuple[NotebookNode, dict]:
        self._as_released = False
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None:
            try:
                source_cell = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                pass  # OverwriteCells reports it
            else:
                self._as_released = source_cell.locked and cell.source == self.released_source(source_cell.source)
        try:
            return super().preprocess_cell(cell, resources, cell_index)
        finally:
            self._as_released = False

    def report_change(self, name: str, attr: str, old: Any, new: Any) -> None:
        if attr == "checksum" and self._as_released:
            self.log.debug("Cell %s is as released: its hidden tests are restored from the gradebook", name)
            return
        super().report_change(name, attr, old, new)
