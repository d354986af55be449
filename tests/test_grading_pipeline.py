"""The whole nbgrader flow of every assignment on a temporary copy of the course, through the real
nbgrader (``fsl_utils.grading.pipeline``, what ``make release`` and ``make grade`` run): generate
the release -> submit the reference, the untouched release, untrained weights and typical wrong
implementations (and a different correct one) -> autograde in one sandboxed batch ->
generate_feedback -> export grades.csv.

The checks every assignment gets, parametrised over protonet, maml and simclr; each batch is
graded once per session (the ``graded_course``, ``graded_maml`` and ``graded_simclr`` fixtures of
tests/conftest.py; the protonet batch also holds the hostile submissions of
tests/test_grading_adversarial.py). What each assignment expects is its ``PIPELINE``
(tests/grading/cases.py, maml.py, simclr.py); the checks specific to one assignment are in
tests/test_assignment_<name>.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from grading import assignment as shared
from grading import cases, maml, simclr

PIPELINES: dict[str, shared.Pipeline] = {p.assignment: p for p in (cases.PIPELINE, maml.PIPELINE, simclr.PIPELINE)}

every_assignment = pytest.mark.parametrize("assignment", list(PIPELINES))


@pytest.fixture
def pipeline(assignment: str) -> shared.Pipeline:
    return PIPELINES[assignment]


@pytest.fixture
def graded(pipeline: shared.Pipeline, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The assignment's graded batch (a session fixture: graded once, whichever test asks first)."""
    return request.getfixturevalue(pipeline.fixture)


@every_assignment
def test_points_table_matches_the_notebook(pipeline):
    shared.assert_points_table(pipeline.source, pipeline.points, pipeline.autograded, pipeline.manual)


@every_assignment
def test_committed_release_is_in_sync(pipeline, graded):
    """Fails when solutions/ changed but `make release` was not run (and committed): cells and manifest."""
    shared.assert_release_in_sync(graded["released"], pipeline.committed, pipeline.assignment)


@every_assignment
def test_release_has_no_hidden_tests_solutions_or_weights(pipeline, graded):
    shared.assert_release_contents(graded["released"], pipeline.secrets(), pipeline.release_markers, list(pipeline.required_files))


@every_assignment
def test_the_batch_holds_every_case(pipeline, graded):
    """Every submission of the batch is checked here (its typical cases) or by another test."""
    assert set(graded["expected"]) == set(pipeline.students) | pipeline.other_students, (
        f"submissions {sorted(graded['expected'])}, expected {sorted(set(pipeline.students) | pipeline.other_students)}")


@pytest.mark.parametrize("assignment, student", [(a, s) for a, p in PIPELINES.items() for s in p.students])
def test_scores_in_grades_csv(pipeline, graded, student):
    row = shared.read_grades(graded["root"])[student]
    expected = graded["expected"][student]
    assert float(row["max_score"]) == pipeline.max_score, f"{student}: max_score {row['max_score']}, not {pipeline.max_score}"
    assert float(row["raw_score"]) == expected, f"{student}: got {row['raw_score']}, expected {expected}"


@every_assignment
def test_every_mistake_fails_exactly_its_cells(pipeline, graded):
    """Per cell, not only the sum: each case fails exactly the test cells its cases module names."""
    shared.assert_failing_cells(graded["root"], pipeline.assignment, pipeline.failing)


@every_assignment
def test_feedback_never_shows_hidden_tests(pipeline, graded):
    """Every graded submission gets feedback (and only submissions do); no page shows a hidden test
    line or any of the assignment's markers."""
    root, assignment = graded["root"], pipeline.assignment
    pages = shared.feedback_pages(root, assignment)
    got = {p.parent.parent.name for p in pages}
    not_graded = set(json.loads((root / "grading" / "not_graded.json").read_text()))
    assert not not_graded & set(pipeline.students), f"typical cases not graded: {sorted(not_graded & set(pipeline.students))}"
    want = set(graded["expected"]) - not_graded - {"wrong_assignment"}  # (a hostile case of the protonet batch)
    assert got >= want, f"every graded submission gets feedback: none for {sorted(want - got)}"
    assert got <= set(graded["expected"]), f"feedback for students who submitted nothing: {sorted(got - set(graded['expected']))}"
    shared.assert_feedback_hides(pages, pipeline.secrets(), pipeline.feedback_markers)


@every_assignment
def test_feedback_explains_what_failed(pipeline, graded):
    feedback = graded["root"] / "grading" / "feedback"
    for student, phrases in pipeline.explanations.items():
        html = (feedback / student / pipeline.assignment / f"{pipeline.assignment}.html").read_text(errors="replace")
        for phrase in phrases:
            assert phrase in html, f"{student}: the feedback does not say {phrase!r}"


@every_assignment
def test_grading_leaves_solutions_unchanged(graded):
    after = shared.digest(graded["root"] / "solutions")
    assert after == graded["before"]["solutions"], f"grading changed solutions/: {sorted(set(after.items()) ^ set(graded['before']['solutions'].items()))}"


@every_assignment
def test_kernels_read_the_graders_dataset_cache(pipeline, graded):
    """The grader builds the dataset caches before the batch (``prepare``); every sandboxed kernel
    must read them. A kernel that cannot (as when the grader ran as root and the cache files were
    private to it) decodes the dataset again — ten seconds per submission — and warns that it could
    not write the cache back."""
    autograded = graded["root"] / "grading" / "autograded"
    notebooks = [p for student in pipeline.students for p in sorted((autograded / student / pipeline.assignment).glob("*.ipynb"))]
    texts = {p: p.read_text(errors="replace") for p in notebooks}
    assert texts, f"no autograded notebooks under {autograded}"
    rebuilt = [str(p.relative_to(autograded)) for p, text in texts.items() if "could not write the cache file" in text]
    assert not rebuilt, f"these kernels could not read the grader's dataset cache and rebuilt it: {rebuilt}"
