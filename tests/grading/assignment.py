"""What the grading pipeline tests of every assignment share: a temporary copy of the course
with its release, submissions, one sandboxed grading batch, grades.csv, the hidden test lines
that must never leak, and what the common checks need of an assignment (:class:`Pipeline`).

Used by tests/grading/course.py (the protonet batch of the ``graded_course`` fixture),
tests/grading/maml.py and tests/grading/simclr.py (their batches: the ``graded_maml`` and
``graded_simclr`` fixtures of tests/conftest.py) and tests/test_grading_pipeline.py (the checks
every assignment's pipeline gets, parametrised over the three); the checks specific to an
assignment are in tests/test_assignment_<name>.py. Imported as ``from grading import assignment``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import resource
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from fsl_utils.grading.feedback import secret_lines, strip_hidden
from fsl_utils.grading.notebook import fill_solutions, read_notebook
from fsl_utils.grading.pipeline import grade, release
from fsl_utils.grading.release import comparable_cells
from needs import require

ROOT = Path(__file__).resolve().parents[2]
#: Submissions graded at the same time (one sandboxed kernel per core of a 2-core CI machine).
JOBS = 2

Notebook = Union[dict, Path]
#: student -> (notebook: a path or JSON, weights file or None, expected autograded score)
Submissions = Mapping[str, tuple[Notebook, Union[Path, None], float]]


def require_bwrap() -> None:
    """The grading tests run every kernel under bubblewrap: without it they fail in CI and skip
    locally, with the reason."""
    require("grading test", None if shutil.which("bwrap") else
            "bubblewrap is not installed (apt-get install -y bubblewrap), and every grading kernel runs under it")


def files(assignment: str) -> tuple[Path, Path, Path]:
    """The source notebook, the reference weights and the committed release notebook."""
    solutions = ROOT / "solutions" / assignment
    return solutions / f"{assignment}.ipynb", solutions / f"{assignment}.pt", ROOT / "assignments" / assignment / f"{assignment}.ipynb"


# -- building and grading the temporary course ---------------------------------------------------
def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def submit(root: Path, assignment: str, student: str, notebook: Notebook, weights: Path | None) -> Path:
    """Put ``student``'s notebook (a path or JSON) and weights in ``grading/submitted``."""
    folder = root / "grading" / "submitted" / student / assignment
    folder.mkdir(parents=True)
    if isinstance(notebook, Path):
        shutil.copy(notebook, folder / f"{assignment}.ipynb")
    else:
        (folder / f"{assignment}.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    if weights is not None:
        shutil.copy(weights, folder / f"{assignment}.pt")
    return folder


def cpu_seconds() -> float:
    """CPU time of this process and its (waited-for) children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def release_course(root: Path, assignment: str) -> Path:
    """Copy ``nbgrader_config.py`` and ``solutions/<assignment>`` into ``root`` and generate the
    release; returns the released notebook. The grading tests need the sandbox."""
    require_bwrap()
    shutil.copy(ROOT / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "solutions" / assignment, root / "solutions" / assignment, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    return release(root, assignment) / f"{assignment}.ipynb"


def grade_batch(root: Path, assignment: str, n_submissions: int, jobs: int = JOBS, cell_timeout: int | None = None,
                env: Mapping[str, str] | None = None) -> tuple[float, float]:
    """Grade every submission in one sandboxed batch (``make grade``), with ``FSL_CELL_TIMEOUT``
    set to ``cell_timeout`` (if given) and the variables of ``env`` set meanwhile; prints and
    returns wall and CPU seconds."""
    changes = {**({"FSL_CELL_TIMEOUT": str(cell_timeout)} if cell_timeout is not None else {}), **(env or {})}
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    start, cpu = time.perf_counter(), cpu_seconds()
    try:
        grade(root, assignment, sandbox=True, jobs=jobs)
    finally:
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    print(f"graded {n_submissions} submissions in {seconds:.0f} s ({cpu:.0f} CPU-s)")
    return seconds, cpu


def usual_submissions(assignment: str, released: Path, answers: dict[str, str], untrained: Path, full: float, untrained_score: float,
                      different_correct: dict[str, str] | None = None) -> dict[str, tuple[Notebook, Path | None, float]]:
    """The cases every pipeline test grades: the reference with its weights (``full`` marks), the untouched
    release (0), the reference ``answers`` with ``untrained`` weights, and (if given) a different correct
    implementation with the reference weights (``full``)."""
    source, weights, _ = files(assignment)
    cases: dict[str, tuple[Notebook, Path | None, float]] = {
        "reference": (source, weights, full),
        "untouched_release": (released, None, 0.0),
        "untrained_weights": (fill_solutions(released, answers), untrained, untrained_score),
    }
    if different_correct is not None:
        cases["different_correct"] = (fill_solutions(released, different_correct), weights, full)
    return cases


def graded_course(root: Path, assignment: str, submissions: Callable[[Path, Path], Submissions]) -> dict[str, Any]:
    """Release the assignment into ``root``, submit ``submissions(root, released)`` and grade them.

    Returns:
        ``root``, ``released`` (the generated release notebook), ``expected`` (student ->
        autograded score) and ``before`` (``solutions``: :func:`digest` of the copied ``solutions/``).
    """
    released = release_course(root, assignment)
    expected: dict[str, float] = {}
    for student, (notebook, weights, score) in submissions(root, released).items():
        submit(root, assignment, student, notebook, weights)
        expected[student] = score
    before = {"solutions": digest(root / "solutions")}
    grade_batch(root, assignment, len(expected))
    return {"root": root, "released": released, "expected": expected, "before": before}


# -- reading the results -------------------------------------------------------------------------
def read_grades(root: Path) -> dict[str, dict[str, str]]:
    """Rows of ``grading/grades.csv`` by student."""
    with open(root / "grading" / "grades.csv", newline="") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


def failed_cells(root: Path, assignment: str, student: str) -> set[str]:
    """Grade ids of the autograded test cells of ``student`` that show an error."""
    nb = read_notebook(root / "grading" / "autograded" / student / assignment / f"{assignment}.ipynb")
    return {c["metadata"]["nbgrader"]["grade_id"] for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")
            and c["cell_type"] == "code" and any(o["output_type"] == "error" for o in c.get("outputs", []))}


def hidden_secrets(source: Path, hidden_tests: Path, min_count: int = 0, except_shown: bool = True) -> set[str]:
    """Distinctive lines of the hidden tests (the notebook's hidden regions and ``hidden_tests.py``).

    Args:
        except_shown: leave out the lines the release shows anyway (in cells other than answers,
            e.g. a harness that rebuilds the notebook's given network).
        min_count: fewer secrets than this fail (too few lines to check for leaks).
    """
    hidden, public = [], set()
    for cell in read_notebook(source)["cells"]:
        visible, removed = strip_hidden(cell["source"])
        hidden += removed
        if not cell["metadata"].get("nbgrader", {}).get("solution"):
            public |= {line.strip() for line in visible.split("\n")}
    hidden.append(hidden_tests.read_text())
    secrets = secret_lines(hidden)
    if except_shown:
        shown = "\n".join(public)
        secrets = {s for s in secrets if s not in shown}
    assert len(secrets) > min_count, "too few distinctive hidden lines to check for leaks"
    return secrets


# -- what the common pipeline checks need of an assignment --------------------------------------
@dataclass(frozen=True)
class Pipeline:
    """One assignment's pipeline as tests/test_grading_pipeline.py checks it (each assignment's
    cases module defines its ``PIPELINE``).

    Attributes:
        assignment: its name (``solutions/<assignment>``).
        fixture: the session fixture of tests/conftest.py holding its graded batch (:func:`graded_course`).
        points: points of each autograded test cell, as in the notebook's points table.
        autograded, manual: the assignment's autograded and manually graded points.
        students: the typical cases of the batch; each one's score in grades.csv is checked.
        other_students: the batch's other submissions (checked elsewhere, e.g. hostile ones).
        failing: student -> exactly the test cells that fail for it.
        release_markers: text the release must not contain (besides the hidden test lines).
        required_files: what the release's manifest requires students to hand in with the notebook.
        feedback_markers: text no feedback page may show (besides the hidden test lines).
        explanations: student -> phrases its feedback page must show.
        secrets_except_shown, min_secrets: which hidden test lines must never leak
            (:func:`hidden_secrets`' ``except_shown`` and ``min_count``).
    """

    assignment: str
    fixture: str
    points: Mapping[str, float]
    autograded: float
    manual: float
    students: tuple[str, ...]
    failing: Mapping[str, Iterable[str]]
    release_markers: tuple[str, ...]
    required_files: tuple[str, ...]
    feedback_markers: tuple[str, ...]
    explanations: Mapping[str, tuple[str, ...]]
    other_students: frozenset[str] = field(default_factory=frozenset)
    secrets_except_shown: bool = True
    min_secrets: int = 50

    @property
    def source(self) -> Path:
        return files(self.assignment)[0]

    @property
    def committed(self) -> Path:
        """The committed release notebook (``assignments/<assignment>``)."""
        return files(self.assignment)[2]

    @property
    def max_score(self) -> float:
        return self.autograded + self.manual

    def secrets(self) -> set[str]:
        """The hidden test lines that must never leak (:func:`hidden_secrets`)."""
        return hidden_secrets(self.source, ROOT / "solutions" / self.assignment / "hidden_tests.py",
                              min_count=self.min_secrets, except_shown=self.secrets_except_shown)


# -- the checks every assignment's pipeline test makes -------------------------------------------
def assert_points_table(source: Path, points: Mapping[str, float], autograded: float, manual: float) -> None:
    """The test's points table is the notebook's, and the points add up."""
    cells = {c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["nbgrader"] for c in read_notebook(source)["cells"]
             if c["metadata"].get("nbgrader", {}).get("grade")}
    auto = {k: v["points"] for k, v in cells.items() if k.startswith("test_")}
    assert auto == points, f"points of the notebook's test cells {auto} != the test's table {dict(points)}"
    total = sum(v["points"] for v in cells.values())
    assert total == autograded + manual, f"the notebook's points add up to {total}, not {autograded} + {manual}"


def assert_release_in_sync(released: Path, committed: Path, assignment: str, manifest: bool = True) -> None:
    """The freshly generated release equals the committed ``assignments/<name>`` (cells, and the manifest)."""
    fresh, old = comparable_cells(released), comparable_cells(committed)
    assert len(fresh) == len(old), f"assignments/{assignment} is stale: run `make release ASSIGNMENT={assignment}` and commit it"
    for i, (a, b) in enumerate(zip(fresh, old)):
        assert a == b, f"cell {i} of assignments/{assignment}/{assignment}.ipynb is stale: run `make release ASSIGNMENT={assignment}` and commit it"
    if manifest:
        assert json.loads((released.parent / "manifest.json").read_text()) == json.loads((committed.parent / "manifest.json").read_text()), "stale manifest"


def assert_release_contents(released: Path, secrets: Iterable[str], markers: Iterable[str], required_files: list[str] | None = None) -> None:
    """Only the notebook and its manifest are released, without hidden test lines (``secrets``),
    solutions or other ``markers``; the manifest requires ``required_files`` (if given)."""
    folder = released.parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(["manifest.json", released.name]), "only the notebook and its manifest are released"
    if required_files is not None:
        required = json.loads((folder / "manifest.json").read_text())["required_files"]
        assert required == required_files, f"the manifest requires {required}, expected {required_files}"
    text = released.read_text()
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"hidden test code in the release: {leaked[:3]}"
    for marker in markers:
        assert marker not in text, f"{marker!r} in the release"


def assert_failing_cells(root: Path, assignment: str, failing: Mapping[str, Iterable[str]]) -> None:
    """Each student fails exactly the test cells listed for it, no more, no fewer."""
    for student, cells in failing.items():
        failed = failed_cells(root, assignment, student)
        assert failed == set(cells), f"{student}: failed {sorted(failed)}, expected {sorted(cells)}"


def feedback_pages(root: Path, assignment: str) -> list[Path]:
    return sorted((root / "grading" / "feedback").glob(f"*/{assignment}/{assignment}.html"))


def assert_feedback_hides(pages: Iterable[Path], secrets: Iterable[str], markers: Iterable[str]) -> None:
    """No feedback page shows a hidden test line (``secrets``) or any of ``markers``."""
    secrets, markers = list(secrets), list(markers)
    for page in pages:
        html = page.read_text(errors="replace")
        leaked = [s for s in secrets if s in html]
        assert not leaked, f"{page.parent.parent.name}: hidden test code in feedback: {leaked[:3]}"
        for marker in markers:
            assert marker not in html, f"{page.parent.parent.name}: {marker!r} in feedback"


def apply_mistake(sources: dict[str, str], name: str, cell: str, old: str, new: str, where: str = "MUTANTS") -> None:
    """Replace ``old`` by ``new`` in the reference answer ``cell`` (mistake ``name``)."""
    assert old in sources[cell], f"mutant {name}: {old!r} not in the reference answer {cell}; update {where}"
    sources[cell] = sources[cell].replace(old, new)
