"""Checks of the simclr pipeline that the other assignments do not share (the common ones are
tests/test_grading_pipeline.py, the cases tests/grading/simclr.py).

The mistakes are independent per task (the hidden tests grade each function on its own, and
training is skipped while autograding), so to keep the batch short every "mistakes_*" submission
carries one mistake in each of several answer cells: the groups must cover every mistake once
with at most one per answer cell, and every mistake must fail exactly its own cells among the
test cells of its task (the submission's failing cells are exactly their union: the common
check). The batch is the session's ``graded_simclr`` (tests/conftest.py).
"""

from __future__ import annotations

from grading import assignment as shared
from grading.simclr import ASSIGNMENT, GROUPS, MUTANTS


def test_mistake_groups_cover_every_mutant_once_and_cells_do_not_overlap():
    listed = [m for group in GROUPS.values() for m in group]
    assert sorted(listed) == sorted(MUTANTS)
    for group in GROUPS.values():
        cells = [MUTANTS[m][0] for m in group]
        assert len(cells) == len(set(cells)), f"{group}: two mistakes in one answer cell"


def test_every_mistake_fails_exactly_its_cells_of_its_task(graded_simclr):
    for student, mistakes in GROUPS.items():
        failed = shared.failed_cells(graded_simclr["root"], ASSIGNMENT, student)
        for m in mistakes:  # per answer cell: exactly this mistake's cells among the cells of its task
            task_cells = {f"test_{MUTANTS[m][0]}_visible", f"test_{MUTANTS[m][0]}_hidden"}
            assert failed & task_cells == set(MUTANTS[m][2]), f"{student}/{m}: failed {sorted(failed & task_cells)}, expected {sorted(MUTANTS[m][2])}"
