"""Similarity search, precision@k and relevance feedback against naive oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fsl_utils.retrieval import (
    RelevanceFeedback,
    cosine_similarity,
    precision_at_k,
    rank,
    simulate_feedback,
    top_k,
)


def test_cosine_similarity_matches_a_loop_oracle():
    g = torch.Generator().manual_seed(0)
    q, pool = torch.randn(3, 5, generator=g), torch.randn(7, 5, generator=g)
    expected = np.array([[np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) for b in pool.numpy()] for a in q.numpy()])
    np.testing.assert_allclose(cosine_similarity(q, pool).numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cosine_similarity(q[1], pool).numpy(), expected[1], rtol=1e-5, atol=1e-6)


def test_cosine_similarity_is_scale_invariant_and_checks_shapes():
    pool = torch.randn(6, 4)
    assert torch.allclose(cosine_similarity(pool[0] * 7.5, pool), cosine_similarity(pool[0], pool), atol=1e-6)
    with pytest.raises(ValueError, match="queries must have shape"):
        cosine_similarity(torch.randn(3), pool)
    with pytest.raises(ValueError, match="pool must have shape"):
        cosine_similarity(torch.randn(4), torch.randn(4))


def test_rank_sorts_descending_stably_and_excludes():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.9, -1.0])
    assert rank(scores).tolist() == [1, 3, 2, 0, 4]
    assert rank(scores, exclude=[3, 0]).tolist() == [1, 2, 4]
    assert top_k(scores, 2, exclude=torch.tensor([1])).tolist() == [3, 2]
    with pytest.raises(ValueError, match="outside"):
        rank(scores, exclude=[5])
    with pytest.raises(ValueError, match="k must be"):
        top_k(scores, 0)


def test_precision_at_k_counts_relevant_items():
    relevant = torch.tensor([True, False, True, True, False])
    ranking = torch.tensor([2, 1, 0, 4, 3])
    assert precision_at_k(ranking, relevant, 1) == 1.0
    assert precision_at_k(ranking, relevant, 2) == 0.5
    assert precision_at_k(ranking, relevant, 5) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="at least 6"):
        precision_at_k(ranking, relevant, 6)
    with pytest.raises(ValueError, match="bool mask"):
        precision_at_k(ranking, relevant.long(), 2)


def _two_clusters(n: int = 200, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A pool where the target set differs from the rest along a direction the query
    does not reveal well: similarity search is mediocre, a linear probe fixes it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    relevant = torch.zeros(n, dtype=torch.bool)
    relevant[: n // 4] = True
    x[relevant, 0] += 3.0  # the concept: a large first coordinate
    return x + 2.0, relevant  # a shared offset makes raw cosine similarity blunt


def test_relevance_feedback_without_negatives_ranks_by_similarity_to_positive_mean():
    x, _ = _two_clusters()
    fb = RelevanceFeedback(x, query=0)
    assert torch.equal(fb.ranking(), rank(cosine_similarity(x[0], x), exclude=[0]))
    fb.mark(5, True)
    fb.retrain()
    assert fb.classifier is None
    expected = cosine_similarity(torch.nn.functional.normalize(x[[0, 5]], dim=1).mean(0), x)
    assert torch.allclose(fb.scores, expected, atol=1e-6)


def test_relevance_feedback_probe_matches_sklearn_oracle_and_moves_ranking():
    from sklearn.linear_model import LogisticRegression

    x, relevant = _two_clusters()
    fb = RelevanceFeedback(x, query=0, C=2.0)
    before = fb.ranking()
    marks = {1: True, 2: True, 100: False, 150: False, 199: False}
    for i, r in marks.items():
        fb.mark(i, r)
    fb.retrain()
    xn = torch.nn.functional.normalize(x, dim=1).numpy()
    oracle = LogisticRegression(C=2.0, class_weight="balanced", max_iter=1000).fit(
        xn[[0, 1, 2, 100, 150, 199]], [1, 1, 1, 0, 0, 0]
    )
    np.testing.assert_allclose(fb.scores.numpy(), oracle.decision_function(xn), rtol=1e-4, atol=1e-5)
    assert not torch.equal(before, fb.ranking())
    assert 0 not in fb.ranking().tolist()
    assert set(fb.ranking(exclude_labeled=True).tolist()).isdisjoint(marks)


def test_relevance_feedback_mark_errors_and_unmark():
    x, _ = _two_clusters()
    fb = RelevanceFeedback(x, query=3)
    with pytest.raises(ValueError, match="query itself"):
        fb.mark(3, True)
    with pytest.raises(ValueError, match="outside the pool"):
        fb.mark(len(x), False)
    fb.mark(4, False)
    fb.mark(4, None)
    assert fb.labels == {}
    with pytest.raises(ValueError, match="outside the pool"):
        RelevanceFeedback(x, query=len(x))
    with pytest.raises(ValueError, match="dims"):
        RelevanceFeedback(x, query=torch.randn(x.shape[1] + 1))


def test_query_embedding_from_outside_the_pool():
    x, _ = _two_clusters()
    fb = RelevanceFeedback(x, query=x[0].clone())
    assert fb.query_index is None
    assert len(fb.ranking()) == len(x)  # nothing excluded
    assert fb.ranking()[0].item() == 0  # the identical embedding is the best match


def test_simulated_feedback_improves_precision_and_counts_labels():
    x, relevant = _two_clusters(n=400, seed=1)
    history = simulate_feedback(x, relevant, query=0, rounds=3, per_round=20, k=50)
    assert len(history) == 4
    assert [h.n_labels for h in history] == [0, 20, 40, 60]
    assert history[0].n_relevant == 0
    assert all(0 <= h.precision <= 1 and 0 <= h.precision_unlabeled <= 1 for h in history)
    # the oracle: precision of the initial cosine ranking, computed by hand
    xs = x.numpy()
    sims = [(float(np.dot(xs[0], v) / np.linalg.norm(xs[0]) / np.linalg.norm(v)), i) for i, v in enumerate(xs) if i != 0]
    top = [i for _, i in sorted(sims, key=lambda t: -t[0])[:50]]
    assert history[0].precision == pytest.approx(relevant[top].float().mean().item())
    assert history[-1].precision_unlabeled > history[0].precision + 0.2


def test_simulate_feedback_rejects_a_bad_mask():
    x, relevant = _two_clusters()
    with pytest.raises(ValueError, match="bool mask"):
        simulate_feedback(x, relevant[:-1], query=0)
