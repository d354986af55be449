"""Few-shot retrieval with embeddings: similarity search and relevance feedback.

The workflow of the Aquarium guide ("A Guide To Few-Shot Learning With Embeddings"):

1. embed an unlabelled pool once (the second-to-last layer of a pretrained network);
2. rank the pool by cosine similarity to one query image (:func:`cosine_similarity`,
   :func:`rank`);
3. let a user mark results relevant / not relevant, fit a linear probe
   (:func:`fsl_utils.evaluation.probe.fit_linear_probe`, scikit-learn's logistic regression) on
   the marked embeddings and re-rank the pool by the probe's score (:class:`RelevanceFeedback`);
   repeat.

:func:`simulate_feedback` plays the user from ground truth (what CI and the benchmark
run); ``fsl_utils.widgets`` gives people the same loop as a clickable grid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .evaluation.probe import LinearClassifier, fit_linear_probe


def cosine_similarity(queries: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every query to every pool item.

    Args:
        queries: shape (q, d), or (d,) for a single query.
        pool: shape (n, d).

    Returns:
        Shape (q, n) (or (n,) for a single query), values in [-1, 1].
    """
    if pool.ndim != 2:
        raise ValueError(f"pool must have shape (n, d), got {tuple(pool.shape)}")
    single = queries.ndim == 1
    q = queries[None] if single else queries
    if q.ndim != 2 or q.shape[1] != pool.shape[1]:
        raise ValueError(f"queries must have shape (q, {pool.shape[1]}) or ({pool.shape[1]},), got {tuple(queries.shape)}")
    sim = F.normalize(q.float(), dim=1) @ F.normalize(pool.float(), dim=1).T
    return sim[0] if single else sim


def _index_tensor(exclude: Iterable[int] | torch.Tensor | None) -> torch.Tensor:
    if exclude is None:
        return torch.empty(0, dtype=torch.long)
    return torch.as_tensor(list(exclude) if not isinstance(exclude, torch.Tensor) else exclude, dtype=torch.long).flatten()


def rank(scores: torch.Tensor, exclude: Iterable[int] | torch.Tensor | None = None) -> torch.Tensor:
    """Pool positions sorted by decreasing score, without the ``exclude``\\ d ones.

    Ties keep the pool order (a stable sort), so rankings are reproducible.

    Args:
        scores: shape (n,).
        exclude: positions to leave out (e.g. the query itself, or already labelled items).

    Returns:
        Long tensor of shape (n - len(set(exclude)),).
    """
    if scores.ndim != 1:
        raise ValueError(f"scores must have shape (n,), got {tuple(scores.shape)}")
    order = torch.sort(scores.detach().cpu(), descending=True, stable=True).indices
    drop = _index_tensor(exclude)
    if len(drop):
        if drop.min() < 0 or drop.max() >= len(scores):
            raise ValueError(f"exclude holds positions outside 0..{len(scores) - 1}")
        keep = torch.ones(len(scores), dtype=torch.bool)
        keep[drop] = False
        order = order[keep[order]]
    return order


def top_k(scores: torch.Tensor, k: int, exclude: Iterable[int] | torch.Tensor | None = None) -> torch.Tensor:
    """The ``k`` best-scoring pool positions (see :func:`rank`), shape (min(k, available),)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return rank(scores, exclude)[:k]


def precision_at_k(ranking: torch.Tensor, relevant: torch.Tensor, k: int) -> float:
    """Fraction of the first ``k`` ranked items that are relevant.

    Args:
        ranking: pool positions, best first, shape (m,) with m >= k.
        relevant: bool mask over the pool, shape (n,).
        k: cut-off.

    Returns:
        A value in [0, 1].
    """
    if relevant.dtype != torch.bool or relevant.ndim != 1:
        raise ValueError(f"relevant must be a 1-D bool mask over the pool, got {relevant.dtype} {tuple(relevant.shape)}")
    if k < 1 or len(ranking) < k:
        raise ValueError(f"precision@{k} needs a ranking of at least {k} items (got {len(ranking)}) and k >= 1")
    return relevant[ranking[:k].cpu()].float().mean().item()


class RelevanceFeedback:
    """Ranks a pool for one query and re-ranks it from a user's relevant / not-relevant marks.

    Before any "not relevant" mark, the score of an item is its cosine similarity to the
    mean of the positives (the query alone at first). Once both kinds of marks exist,
    :meth:`retrain` fits a logistic regression ``p(relevant | e) = σ(wᵀe + b)`` on the
    L2-normalised embeddings of the positives (query included) and negatives, and the
    score becomes ``wᵀe + b``.

    Args:
        embeddings: the pool's embeddings, shape (n, d).
        query: a pool position (the query is then counted as relevant and never
            ranked), or a query embedding of shape (d,).
        C: inverse regularisation strength of the logistic regression.
        class_weight: scikit-learn's ``class_weight`` (``"balanced"`` offsets the usual
            imbalance between few positives and many negatives).
    """

    def __init__(self, embeddings: torch.Tensor, query: int | torch.Tensor, C: float = 1.0, class_weight: str | None = "balanced") -> None:
        if embeddings.ndim != 2 or len(embeddings) < 2:
            raise ValueError(f"embeddings must have shape (n, d) with n >= 2, got {tuple(embeddings.shape)}")
        self.embeddings = F.normalize(embeddings.detach().float().cpu(), dim=1)
        if isinstance(query, torch.Tensor) and query.ndim == 1 and query.is_floating_point():
            if query.shape[0] != embeddings.shape[1]:
                raise ValueError(f"query embedding has {query.shape[0]} dims, the pool {embeddings.shape[1]}")
            self.query_index: int | None = None
            self.query_embedding = F.normalize(query.detach().float().cpu(), dim=0)
        else:
            index = int(query)
            if not 0 <= index < len(embeddings):
                raise ValueError(f"query position {index} is outside the pool 0..{len(embeddings) - 1}")
            self.query_index, self.query_embedding = index, self.embeddings[index]
        self.C, self.class_weight = C, class_weight
        self.labels: dict[int, bool] = {}
        self.classifier: LinearClassifier | None = None
        self.scores = cosine_similarity(self.query_embedding, self.embeddings)

    def mark(self, index: int, relevant: bool | None) -> None:
        """Record the user's mark for a pool position (``None`` removes it).
        Takes effect at the next :meth:`retrain`."""
        index = int(index)
        if not 0 <= index < len(self.embeddings):
            raise ValueError(f"position {index} is outside the pool 0..{len(self.embeddings) - 1}")
        if index == self.query_index:
            raise ValueError("the query itself cannot be marked: it is relevant by definition")
        if relevant is None:
            self.labels.pop(index, None)
        else:
            self.labels[index] = bool(relevant)

    @property
    def n_relevant(self) -> int:
        return sum(self.labels.values())

    @property
    def n_irrelevant(self) -> int:
        return len(self.labels) - self.n_relevant

    def excluded(self, labeled: bool = False) -> list[int]:
        """Positions to leave out of a ranking: the query, plus every marked item if ``labeled``."""
        out = [] if self.query_index is None else [self.query_index]
        return out + (sorted(self.labels) if labeled else [])

    def retrain(self) -> torch.Tensor:
        """Refit the scores from all marks so far; returns the new scores, shape (n,)."""
        positives = [self.query_embedding] + [self.embeddings[i] for i, r in self.labels.items() if r]
        negatives = [i for i, r in self.labels.items() if not r]
        if not negatives:
            self.classifier = None
            self.scores = cosine_similarity(torch.stack(positives).mean(0), self.embeddings)
            return self.scores
        x = torch.cat([torch.stack(positives), self.embeddings[negatives]])
        y = np.r_[np.ones(len(positives), dtype=np.int64), np.zeros(len(negatives), dtype=np.int64)]
        self.classifier = fit_linear_probe(x, y, c=self.C, class_weight=self.class_weight)
        self.scores = self.classifier.decision(self.embeddings).float()
        return self.scores

    def ranking(self, exclude_labeled: bool = False) -> torch.Tensor:
        """Pool positions by decreasing current score (query excluded), shape (m,)."""
        return rank(self.scores, self.excluded(labeled=exclude_labeled))


@dataclass(frozen=True)
class FeedbackRound:
    """The state after one round of (simulated) feedback.

    Attributes:
        n_labels: marks given so far (relevant + not relevant).
        n_relevant: marks "relevant" so far.
        precision: precision@k of the full ranking (marked items included: what the
            user sees as the top-k results).
        precision_unlabeled: precision@k among items nobody has marked yet (what the
            probe has genuinely found).
    """

    n_labels: int
    n_relevant: int
    precision: float
    precision_unlabeled: float


def simulate_feedback(
    embeddings: torch.Tensor,
    relevant: torch.Tensor,
    query: int,
    rounds: int = 5,
    per_round: int = 30,
    k: int = 50,
    C: float = 1.0,
) -> list[FeedbackRound]:
    """Relevance feedback with a simulated user who knows the ground truth.

    Round 0 is the plain similarity search. In every round the user marks the
    ``per_round`` best-ranked items not marked yet (as a person scrolling the results
    would), then the probe is retrained and the pool re-ranked.

    Args:
        embeddings: the pool, shape (n, d).
        relevant: bool mask of the target set, shape (n,).
        query: pool position of the query image.
        rounds: feedback rounds after the initial search.
        per_round: items marked per round.
        k: precision cut-off.
        C: logistic regression's inverse regularisation strength.

    Returns:
        ``rounds + 1`` :class:`FeedbackRound` values, the first one before any feedback.
    """
    if relevant.shape != (len(embeddings),) or relevant.dtype != torch.bool:
        raise ValueError(f"relevant must be a bool mask of shape ({len(embeddings)},), got {relevant.dtype} {tuple(relevant.shape)}")
    feedback = RelevanceFeedback(embeddings, query, C=C)

    def snapshot() -> FeedbackRound:
        return FeedbackRound(
            len(feedback.labels), feedback.n_relevant,
            precision_at_k(feedback.ranking(), relevant, k),
            precision_at_k(feedback.ranking(exclude_labeled=True), relevant, k),
        )

    history = [snapshot()]
    for _ in range(rounds):
        for i in feedback.ranking(exclude_labeled=True)[:per_round].tolist():
            feedback.mark(i, bool(relevant[i]))
        feedback.retrain()
        history.append(snapshot())
    return history
