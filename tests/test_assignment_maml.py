"""The `maml` assignment through the real nbgrader flow, on a temporary copy of the course.

``fsl_utils.grading.pipeline`` (what ``make release`` and ``make grade ASSIGNMENT=maml`` run)
generates the release, then one sandboxed batch autogrades: the reference solution with its
weights (full marks), the untouched release (0), the reference with untrained weights, typical
wrong implementations (each loses exactly the test cells listed in ``MUTANTS``) and a
different correct implementation (full marks); then feedback and grades.csv.
"""

from __future__ import annotations

import csv
import json
import resource
import shutil
import time
from pathlib import Path

import pytest
import torch

from fsl_utils.grading import sandbox
from fsl_utils.grading.feedback import secret_lines, strip_hidden
from fsl_utils.grading.notebook import fill_solutions, grade_id, read_notebook, solution_sources
from fsl_utils.grading.pipeline import grade, release
from fsl_utils.grading.release import comparable_cells

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "maml"
SOURCE = ROOT / "solutions" / ASSIGNMENT / "maml.ipynb"
WEIGHTS = ROOT / "solutions" / ASSIGNMENT / "maml.pt"
RELEASE = ROOT / "assignments" / ASSIGNMENT / "maml.ipynb"
AUTOGRADED, MANUAL = 20, 5
POINTS = {
    "test_inner_loop_visible": 1, "test_inner_loop_hidden": 4,
    "test_task_loss_visible": 1, "test_task_loss_hidden": 4,
    "test_meta_update_visible": 1, "test_meta_update_hidden": 4,
    "test_weights_5w1s": 3, "test_weights_5w5s": 2,
}
WEIGHT_TESTS = ("test_weights_5w1s", "test_weights_5w5s")

#: case -> (answer cell, (old, new) replacement in the reference answer, test cells that must fail)
MUTANTS: dict[str, tuple[str, tuple[str, str], tuple[str, ...]]] = {
    "gradient_ascent": (
        "inner_loop", ("p - inner_lr * g", "p + inner_lr * g"),
        ("test_inner_loop_visible", "test_inner_loop_hidden"),
    ),
    "second_order_without_create_graph": (
        "inner_loop", ("create_graph=not first_order", "create_graph=False"),
        ("test_inner_loop_hidden",),  # theta' still requires grad, so the visible checks pass
    ),
    "query_loss_before_adaptation": (
        "maml_task_loss", ("logits = functional_call(model, adapted, (episode.query_x,))", "logits = functional_call(model, params, (episode.query_x,))"),
        # with the head at zero the unadapted logits are all 0: no meta-gradient reaches the convolutions, so the
        # visible meta_update test (which runs the student's own maml_task_loss) sees no change either
        ("test_task_loss_visible", "test_task_loss_hidden", "test_meta_update_visible"),
    ),
    "first_order_flag_dropped": (
        "maml_task_loss", ("inner_lr, n_steps, first_order)\n    logits", "inner_lr, n_steps)\n    logits"),
        ("test_task_loss_hidden",),
    ),
    "no_zero_grad": (
        "meta_update", ("    optimizer.zero_grad()\n", ""),
        ("test_meta_update_hidden",),
    ),
    "borrowed_course_maml": (
        "inner_loop",
        ("    for _ in range(n_steps):", "    from fsl_utils.methods.maml import MAML\n"
         "    return MAML(model, inner_lr, n_steps, first_order).adapt(support_x, support_y, params)\n    for _ in range(n_steps):"),
        ("test_inner_loop_hidden",),  # the visible example passes; the hidden test detects the borrowing
    ),
}

#: A correct implementation written differently from the reference: log_softmax + gather,
#: gradients detached for first order, a 0-d tensor accuracy, one backward per task.
DIFFERENT_CORRECT = {
    "inner_loop": '''
def inner_loop(model, params, support_x, support_y, inner_lr, n_steps, first_order=False):
    adapted = dict(params)
    names = list(adapted)
    for step in range(n_steps):
        logits = functional_call(model, adapted, support_x)
        loss = F.nll_loss(F.log_softmax(logits, dim=-1), support_y)
        grads = torch.autograd.grad(loss, [adapted[n] for n in names], create_graph=True)
        if first_order:
            grads = [g.detach() for g in grads]
        adapted = {n: adapted[n] - inner_lr * g for n, g in zip(names, grads)}
    return adapted
''',
    "maml_task_loss": '''
def maml_task_loss(model, params, episode, inner_lr, n_steps, first_order=False):
    fast = inner_loop(model, params, episode.support_x, episode.support_y, inner_lr, n_steps, first_order=first_order)
    logits = functional_call(model, fast, (episode.query_x,))
    loss = -torch.log_softmax(logits, dim=1).gather(1, episode.query_y[:, None]).mean()
    return loss, (logits.argmax(1) == episode.query_y).double().mean()
''',
    "meta_update": '''
def meta_update(model, optimizer, episodes, inner_lr, n_steps, first_order=False):
    optimizer.zero_grad()
    total_loss = total_accuracy = 0.0
    for episode in episodes:
        loss, accuracy = maml_task_loss(model, initial_params(model), episode, inner_lr, n_steps, first_order)
        (loss / len(episodes)).backward()
        total_loss += loss.item()
        total_accuracy += float(accuracy)
    optimizer.step()
    return total_loss / len(episodes), total_accuracy / len(episodes)
''',
}


def answers(mutant: str | None = None) -> dict[str, str]:
    sources = solution_sources(SOURCE)
    if mutant is not None:
        cell, (old, new), _ = MUTANTS[mutant]
        assert old in sources[cell], f"mutant {mutant}: {old!r} not in the reference answer {cell}; update MUTANTS"
        sources[cell] = sources[cell].replace(old, new)
    return sources


def _given(*cells: str) -> dict:
    """Namespace of the source notebook's setup cell and the given (locked) ``cells``."""
    namespace: dict = {"__name__": "maml_given"}
    sources = {grade_id(c): c["source"] for c in read_notebook(SOURCE)["cells"]}
    for cell in ("setup", *cells):
        exec(compile(sources[cell], str(SOURCE), "exec"), namespace)  # noqa: S102 (our own notebook)
    return namespace


def expected(failing: tuple[str, ...]) -> float:
    return float(AUTOGRADED - sum(POINTS[c] for c in failing))


def submit(root: Path, student: str, notebook: dict | Path, weights: Path | None) -> None:
    folder = root / "grading" / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    if isinstance(notebook, Path):
        shutil.copy(notebook, folder / "maml.ipynb")
    else:
        (folder / "maml.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    if weights is not None:
        shutil.copy(weights, folder / "maml.pt")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Release, submit every case and grade them all in one sandboxed batch."""
    if not sandbox.available():
        pytest.fail("the grading tests need the sandbox: Linux and root (as in CI and on the grading machine)")
    root = tmp_path_factory.mktemp("maml_course")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, root / "solutions" / ASSIGNMENT, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    released = release(root, ASSIGNMENT) / "maml.ipynb"

    untrained = root / "untrained.pt"
    torch.manual_seed(0)
    torch.save(_given("network")["MAMLConvNet"]().state_dict(), untrained)
    scores = {"reference": float(AUTOGRADED), "untouched_release": 0.0, "untrained_weights": expected(WEIGHT_TESTS),
              "different_correct": float(AUTOGRADED)}
    submit(root, "reference", SOURCE, WEIGHTS)
    submit(root, "untouched_release", released, None)
    submit(root, "untrained_weights", fill_solutions(released, answers()), untrained)
    submit(root, "different_correct", fill_solutions(released, DIFFERENT_CORRECT), WEIGHTS)
    for name, (_, _, failing) in MUTANTS.items():
        submit(root, name, fill_solutions(released, answers(name)), WEIGHTS)
        scores[name] = expected(failing)
    before = sorted(p.name for p in (root / "solutions" / ASSIGNMENT).iterdir())
    start, cpu = time.perf_counter(), _cpu()
    grade(root, ASSIGNMENT, sandbox=True, jobs=2)
    print(f"graded {len(scores)} submissions in {time.perf_counter() - start:.0f} s ({_cpu() - cpu:.0f} CPU-s)")
    return {"root": root, "released": released, "expected": scores, "before": before}


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _grades(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "grading" / "grades.csv", newline="") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


def _hidden_secrets() -> set[str]:
    """Distinctive lines of the hidden tests, except those the release shows anyway (the harness
    rebuilds the notebook's given network and ``initial_params``)."""
    hidden, public = [], set()
    for cell in read_notebook(SOURCE)["cells"]:
        visible, removed = strip_hidden(cell["source"])
        hidden += removed
        if not cell["metadata"].get("nbgrader", {}).get("solution"):
            public |= {line.strip() for line in visible.split("\n")}
    hidden.append((ROOT / "solutions" / ASSIGNMENT / "hidden_tests.py").read_text())
    shown = "\n".join(public)
    secrets = {s for s in secret_lines(hidden) if s not in shown}
    assert len(secrets) > 50, "too few distinctive hidden lines to check for leaks"
    return secrets


def test_points_table_matches_the_notebook():
    cells = {c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["nbgrader"] for c in read_notebook(SOURCE)["cells"]
             if c["metadata"].get("nbgrader", {}).get("grade")}
    auto = {k: v["points"] for k, v in cells.items() if k.startswith("test_")}
    assert auto == POINTS
    assert sum(v["points"] for v in cells.values()) == AUTOGRADED + MANUAL


def test_committed_release_is_in_sync(graded):
    fresh, committed = comparable_cells(graded["released"]), comparable_cells(RELEASE)
    assert len(fresh) == len(committed), "assignments/maml is stale: run `make release ASSIGNMENT=maml` and commit it"
    for i, (a, b) in enumerate(zip(fresh, committed)):
        assert a == b, f"cell {i} of assignments/maml/maml.ipynb is stale: run `make release ASSIGNMENT=maml` and commit it"
    folder = graded["released"].parent
    assert json.loads((folder / "manifest.json").read_text()) == json.loads((RELEASE.parent / "manifest.json").read_text()), "stale manifest"


def test_release_has_no_hidden_tests_solutions_or_weights(graded):
    folder = graded["released"].parent
    assert {p.name for p in folder.iterdir()} == {"manifest.json", "maml.ipynb"}, "only the notebook and its manifest are released"
    assert json.loads((folder / "manifest.json").read_text())["required_files"] == ["maml.pt"]
    text = (folder / "maml.ipynb").read_text()
    leaked = [s for s in _hidden_secrets() if s in text]
    assert not leaked, f"hidden test code in the release: {leaked[:3]}"
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "create_graph=not first_order", "run_hidden_test", "_maml_probe(ns"):
        assert marker not in text


def test_scores_in_grades_csv(graded):
    rows = _grades(graded["root"])
    got = {student: float(rows[student]["raw_score"]) for student in graded["expected"]}
    assert got == graded["expected"]
    assert all(float(rows[s]["max_score"]) == AUTOGRADED + MANUAL for s in graded["expected"])


def test_every_mistake_fails_exactly_its_cells(graded):
    for student, (_, _, failing) in MUTANTS.items():
        nb = read_notebook(graded["root"] / "grading" / "autograded" / student / ASSIGNMENT / "maml.ipynb")
        failed = {c["metadata"]["nbgrader"]["grade_id"] for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")
                  and c["cell_type"] == "code" and any(o["output_type"] == "error" for o in c.get("outputs", []))}
        assert failed == set(failing), f"{student}: failed {sorted(failed)}, expected {sorted(failing)}"


def test_feedback_explains_and_never_shows_hidden_tests(graded):
    feedback = graded["root"] / "grading" / "feedback"
    pages = sorted(feedback.glob(f"*/{ASSIGNMENT}/maml.html"))
    assert {p.parent.parent.name for p in pages} == set(graded["expected"])
    secrets = _hidden_secrets()
    for page in pages:
        html = page.read_text(errors="replace")
        leaked = [s for s in secrets if s in html]
        assert not leaked, f"{page.parent.parent.name}: hidden test code in feedback: {leaked[:3]}"
        # (tracebacks of the student's own code in visible tests are shown, as in plain nbgrader)
        assert "hidden_tests.py" not in html and "_maml_probe(ns" not in html and "def oracle_" not in html
    assert "create_graph=True" in (feedback / "second_order_without_create_graph" / ASSIGNMENT / "maml.html").read_text()
    assert "zero_grad" in (feedback / "no_zero_grad" / ASSIGNMENT / "maml.html").read_text()
    html = (feedback / "untrained_weights" / ASSIGNMENT / "maml.html").read_text()
    assert "5-way 1-shot" in html and "at least" in html
    assert sorted(p.name for p in (graded["root"] / "solutions" / ASSIGNMENT).iterdir()) == graded["before"]
