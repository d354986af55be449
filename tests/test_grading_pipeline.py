"""The whole nbgrader flow on a temporary copy of the course, through the real nbgrader CLI
(``fsl_utils.grading.pipeline``, what ``make release`` and ``make grade`` run):
generate the release -> submit the reference, the untouched release and typical wrong
implementations -> autograde (one batch) -> generate_feedback -> export grades.csv.
The real ``grading/`` folder and gradebook are never touched.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fsl_utils.grading.feedback import secret_lines, strip_hidden
from fsl_utils.grading.notebook import fill_solutions, load_reference, read_notebook
from fsl_utils.grading.pipeline import grade, release
from fsl_utils.grading.release import comparable_cells

_spec = importlib.util.spec_from_file_location("grading_cases", Path(__file__).parent / "grading" / "cases.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

ASSIGNMENT = "protonet"
MAX_SCORE = 25.0  # 20 autograded + 5 manual
EXPECTED = {
    "reference": 20.0,
    "untouched_release": 0.0,
    "untrained_weights": cases.expected_score(("test_weights_5w5s", "test_weights_5w1s")),
    **{name: cases.expected_score(failing) for name, (_, _, failing) in cases.MUTANTS.items()},
}


def _hidden_secrets() -> set[str]:
    hidden = []
    for cell in read_notebook(cases.SOURCE)["cells"]:
        hidden += strip_hidden(cell["source"])[1]
    hidden.append((cases.ROOT / "solutions" / ASSIGNMENT / "hidden_tests.py").read_text())
    return secret_lines(hidden)


def _submit(root: Path, student: str, notebook: dict | Path, weights: Path | None) -> None:
    folder = root / "grading" / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    if isinstance(notebook, Path):
        shutil.copy(notebook, folder / "protonet.ipynb")
    else:
        (folder / "protonet.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    if weights is not None:
        shutil.copy(weights, folder / "protonet.pt")


@pytest.fixture(scope="session")
def course(tmp_path_factory) -> Path:
    """A temporary course: release generated, every case submitted, graded, exported."""
    root = tmp_path_factory.mktemp("course")
    shutil.copy(cases.ROOT / "nbgrader_config.py", root)
    shutil.copytree(cases.ROOT / "solutions" / ASSIGNMENT, root / "solutions" / ASSIGNMENT, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    released = release(root, ASSIGNMENT) / "protonet.ipynb"

    untrained = root / "untrained.pt"
    torch.manual_seed(0)
    torch.save(load_reference(cases.SOURCE).ProtoNetEncoder().state_dict(), untrained)
    _submit(root, "reference", cases.SOURCE, cases.WEIGHTS)
    _submit(root, "untouched_release", released, None)
    _submit(root, "untrained_weights", fill_solutions(released, cases.answers()), untrained)
    for name in cases.MUTANTS:
        _submit(root, name, fill_solutions(released, cases.answers(name)), cases.WEIGHTS)
    grade(root, ASSIGNMENT)
    return root


def test_committed_release_is_in_sync(course):
    """Fails when solutions/ changed but `make release` was not run (and committed)."""
    fresh = comparable_cells(course / "assignments" / ASSIGNMENT / "protonet.ipynb")
    committed = comparable_cells(cases.RELEASE)
    assert len(fresh) == len(committed), "assignments/protonet is stale: run `make release` and commit it"
    for i, (a, b) in enumerate(zip(fresh, committed)):
        assert a == b, f"cell {i} of assignments/protonet/protonet.ipynb is stale: run `make release` and commit it"


def test_release_has_no_hidden_tests_solutions_or_weights(course):
    folder = course / "assignments" / ASSIGNMENT
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "protonet.ipynb"], "only the notebook and its manifest are released"
    assert json.loads((folder / "manifest.json").read_text()) == json.loads((cases.RELEASE.parent / "manifest.json").read_text()), "stale manifest: run `make release`"
    text = (folder / "protonet.ipynb").read_text()
    leaked = [s for s in _hidden_secrets() if s in text]
    assert not leaked, f"hidden test code in the release: {leaked[:3]}"
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "one_hot.T @ embeddings"):
        assert marker not in text


def _grades(course: Path) -> dict[str, dict[str, str]]:
    with open(course / "grading" / "grades.csv", newline="") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_scores_in_grades_csv(course, student):
    row = _grades(course)[student]
    assert float(row["max_score"]) == MAX_SCORE
    assert float(row["raw_score"]) == EXPECTED[student], f"{student}: got {row['raw_score']}, expected {EXPECTED[student]}"


def test_feedback_never_shows_hidden_tests(course):
    pages = sorted((course / "grading" / "feedback").glob(f"*/{ASSIGNMENT}/protonet.html"))
    assert len(pages) == len(EXPECTED), "every submission gets feedback"
    secrets = _hidden_secrets()
    for page in pages:
        html = page.read_text()
        leaked = [s for s in secrets if s in html]
        assert not leaked, f"{page.parent.parent.name}: hidden test code in feedback: {leaked[:3]}"
        assert "Traceback" not in html


def test_feedback_explains_what_failed(course):
    html = (course / "grading" / "feedback" / "sum_not_mean" / ASSIGNMENT / "protonet.html").read_text()
    assert "sum of each class" in html
    html = (course / "grading" / "feedback" / "untrained_weights" / ASSIGNMENT / "protonet.html").read_text()
    assert "5-way 5-shot" in html and "at least" in html


def test_student_can_validate_the_filled_release(course, tmp_path):
    """The student's view: fill in the release, train (here: the reference weights), validate."""
    released = course / "assignments" / ASSIGNMENT / "protonet.ipynb"
    (tmp_path / "protonet.ipynb").write_text(json.dumps(fill_solutions(released, cases.answers())))
    shutil.copy(cases.WEIGHTS, tmp_path / "protonet.pt")
    out = subprocess.run([sys.executable, "-m", "nbgrader", "validate", "protonet.ipynb"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert "Success! Your notebook passes all the tests." in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
