"""Submissions used by the grading tests: the reference and typical wrong implementations.

Each wrong implementation is the reference answer with one realistic mistake; ``LOST``
says which autograded points it must lose (and why), so the expected score of every
case follows from the notebook's points table, not from running the grader.
"""

from __future__ import annotations

from pathlib import Path

from grading import adversarial
from grading.assignment import Pipeline

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "solutions" / "protonet" / "protonet.ipynb"
RELEASE = ROOT / "assignments" / "protonet" / "protonet.ipynb"
WEIGHTS = ROOT / "solutions" / "protonet" / "protonet.pt"
AUTOGRADED_POINTS = 20

#: Points of each autograded test cell (as in the notebook's points table).
POINTS = {
    "test_prototypes_visible": 1, "test_prototypes_hidden": 3,
    "test_distances_visible": 1, "test_distances_hidden": 2,
    "test_logits_visible": 1, "test_logits_hidden": 1,
    "test_encoder_visible": 1, "test_encoder_hidden": 2,
    "test_loss_visible": 1, "test_loss_hidden": 3,
    "test_weights_5w5s": 2, "test_weights_5w1s": 2,
}

#: case -> (answer cell, (old, new) replacement in the reference code, failing test cells)
MUTANTS: dict[str, tuple[str, tuple[str, str], tuple[str, ...]]] = {
    "sum_not_mean": (
        "compute_prototypes",
        ("return one_hot.T @ embeddings / one_hot.sum(dim=0)[:, None]", "return one_hot.T @ embeddings"),
        ("test_prototypes_visible", "test_prototypes_hidden"),
    ),
    "labels_assumed_sorted": (
        "compute_prototypes",
        ("return one_hot.T @ embeddings / one_hot.sum(dim=0)[:, None]", "return embeddings.view(n_way, -1, embeddings.shape[1]).mean(dim=1)"),
        ("test_prototypes_visible", "test_prototypes_hidden"),
    ),
    "euclidean_not_squared": (
        "squared_euclidean_distances",
        (".pow(2).sum(dim=-1)", ".pow(2).sum(dim=-1).sqrt()"),
        ("test_distances_visible", "test_distances_hidden"),
    ),
    "distances_wrong_sign": (
        "prototype_logits",
        ("return -squared_euclidean_distances(", "return squared_euclidean_distances("),
        ("test_logits_visible", "test_logits_hidden"),
    ),
    "softmax_wrong_dim": (
        "episode_loss_and_accuracy",
        ("loss = F.cross_entropy(logits, episode.query_y)", "loss = F.nll_loss(F.log_softmax(logits, dim=0), episode.query_y)"),
        ("test_loss_hidden",),
    ),
    "prototypes_from_query": (
        "episode_loss_and_accuracy",
        (
            "prototypes = compute_prototypes(embeddings[:n_support], episode.support_y, episode.n_way)",
            "prototypes = compute_prototypes(embeddings[n_support:], episode.query_y, episode.n_way)",
        ),
        ("test_loss_hidden",),
    ),
    "three_conv_blocks": (
        "ProtoNetEncoder",
        ("self.blocks = nn.Sequential(block(1), block(64), block(64), block(64))", "self.blocks = nn.Sequential(block(1), block(64), block(64))"),
        ("test_encoder_visible", "test_encoder_hidden", "test_weights_5w5s", "test_weights_5w1s"),
    ),
    "borrowed_easyfsl": (
        "compute_prototypes",
        (
            "one_hot = F.one_hot(labels, n_way).to(embeddings.dtype)  # (n_support, n_way)\n    return one_hot.T @ embeddings / one_hot.sum(dim=0)[:, None]",
            "from easyfsl.methods.utils import compute_prototypes as borrowed\n    return borrowed(embeddings, labels)",
        ),
        # easyfsl is not in the grading sandbox (fsl_utils.grading.sandbox.stubs): the call fails every test that runs the
        # student's compute_prototypes, the visible loss test too (the hidden loss test substitutes the reference helpers)
        ("test_prototypes_visible", "test_prototypes_hidden", "test_loss_visible"),
    ),
}


def answers(mutant: str | None = None) -> dict[str, str]:
    """The reference answers, with ``mutant``'s mistake applied."""
    from fsl_utils.grading.notebook import solution_sources

    sources = solution_sources(SOURCE)
    if mutant is not None:
        cell, (old, new), _ = MUTANTS[mutant]
        if old not in sources[cell]:
            raise AssertionError(f"mutant {mutant}: {old!r} not found in the reference answer {cell}; update tests/grading/cases.py")
        sources[cell] = sources[cell].replace(old, new)
    return sources


def expected_score(failing: tuple[str, ...]) -> float:
    return float(AUTOGRADED_POINTS - sum(POINTS[c] for c in failing))


WEIGHT_TESTS = ("test_weights_5w5s", "test_weights_5w1s")

#: What tests/test_grading_pipeline.py checks of the protonet batch (the ``graded_course`` fixture).
PIPELINE = Pipeline(
    assignment="protonet", fixture="graded_course", points=POINTS, autograded=AUTOGRADED_POINTS, manual=5,
    students=("reference", "untouched_release", "untrained_weights", *MUTANTS),
    other_students=frozenset(adversarial.CASES),  # tests/test_grading_adversarial.py
    failing={"reference": (), "untrained_weights": WEIGHT_TESTS, **{student: failing for student, (_, _, failing) in MUTANTS.items()}},
    release_markers=("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "one_hot.T @ embeddings", "run_hidden_test"),
    required_files=("protonet.pt",),
    feedback_markers=("Traceback (most recent call last)", "run_hidden_test", "BEGIN HIDDEN TESTS"),
    explanations={"sum_not_mean": ("sum of each class",), "untrained_weights": ("5-way 5-shot", "at least")},
    secrets_except_shown=False, min_secrets=0,  # every hidden line, even those the release shows elsewhere
)
