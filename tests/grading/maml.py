"""The `maml` assignment's grading cases: the points table, typical wrong implementations
(``MUTANTS``, each loses exactly the test cells listed), a different correct implementation and
the submissions of its graded batch; :data:`PIPELINE` is what the common pipeline checks of
tests/test_grading_pipeline.py need. maml has no checks of its own beyond those (protonet and simclr have tests/test_assignment_<name>.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from fsl_utils.grading.notebook import fill_solutions, grade_id, read_notebook, solution_sources
from grading import assignment as shared

ASSIGNMENT = "maml"
SOURCE, WEIGHTS, RELEASE = shared.files(ASSIGNMENT)
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
        # the course's MAML is a stub in the grading sandbox (fsl_utils.grading.sandbox.stubs): every test that runs the student's
        # inner_loop fails (the hidden task-loss and meta-update tests substitute the reference inner loop)
        ("test_inner_loop_visible", "test_inner_loop_hidden", "test_task_loss_visible", "test_meta_update_visible"),
    ),
}

#: A correct implementation written differently from the reference: log_softmax + gather,
#: gradients detached for first order, a 0-d tensor accuracy, one backward per task, and the
#: loss summed with float(loss), which makes PyTorch print a UserWarning in the visible
#: meta-update test (nbgrader alone failed that test for it).
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
        total_loss += float(loss)  # PyTorch warns (a tensor that requires grad): a warning costs no points
        total_accuracy += float(accuracy)
    optimizer.step()
    return total_loss / len(episodes), total_accuracy / len(episodes)
''',
}


def answers(mutant: str | None = None) -> dict[str, str]:
    sources = solution_sources(SOURCE)
    if mutant is not None:
        cell, (old, new), _ = MUTANTS[mutant]
        shared.apply_mistake(sources, mutant, cell, old, new)
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


def submissions(root: Path, released: Path) -> dict:
    """Every case of the maml batch: student -> (notebook, weights, expected autograded score)."""
    untrained = root / "untrained.pt"
    torch.manual_seed(0)
    torch.save(_given("network")["MAMLConvNet"]().state_dict(), untrained)
    cases = shared.usual_submissions(ASSIGNMENT, released, answers(), untrained, float(AUTOGRADED), expected(WEIGHT_TESTS), DIFFERENT_CORRECT)
    for name, (_, _, failing) in MUTANTS.items():
        cases[name] = (fill_solutions(released, answers(name)), WEIGHTS, expected(failing))
    return cases


#: What tests/test_grading_pipeline.py checks of the maml batch (the ``graded_maml`` fixture).
PIPELINE = shared.Pipeline(
    assignment=ASSIGNMENT, fixture="graded_maml", points=POINTS, autograded=AUTOGRADED, manual=MANUAL,
    students=("reference", "untouched_release", "untrained_weights", "different_correct", *MUTANTS),
    failing={"reference": (), "different_correct": (), "untrained_weights": WEIGHT_TESTS,
             **{student: failing for student, (_, _, failing) in MUTANTS.items()}},
    release_markers=("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "create_graph=not first_order", "run_hidden_test", "INNER_HELPER"),
    required_files=("maml.pt",),
    # (tracebacks of the student's own code in visible tests are shown, as in plain nbgrader)
    feedback_markers=("hidden_tests.py", "INNER_HELPER", "def oracle_"),
    explanations={"second_order_without_create_graph": ("create_graph=True",), "no_zero_grad": ("zero_grad",),
                  "untrained_weights": ("5-way 1-shot", "at least")},
)
