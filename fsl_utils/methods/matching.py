"""Matching networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016).

A query :math:`\\hat x` is labelled by attention over the support set,

.. math::
    \\hat y = \\sum_{i=1}^{|S|} a(\\hat x, x_i)\\, y_i, \\qquad
    a(\\hat x, x_i) = \\frac{\\exp c(f(\\hat x), g(x_i))}{\\sum_j \\exp c(f(\\hat x), g(x_j))},

with :math:`c` the cosine similarity and :math:`y_i` one-hot labels: a soft nearest
neighbour. Without full-context embeddings :math:`f = g` is one CNN. With ``fce=True``,
:math:`g` is a bidirectional LSTM over the embedded support set (plus a skip
connection) and :math:`f` an attention LSTM that reads the support set for
``fce_steps`` steps (paper, appendix A.2).

:meth:`MatchingNetworks.forward` returns :math:`\\log \\hat y`, so
``F.cross_entropy(logits, y)`` is the paper's negative log-likelihood (the log of a
distribution is unchanged by ``log_softmax``).

In the one-shot case every class has one support example and :math:`\\hat y` equals
the softmax over negative distances to that example: with the same similarity,
matching networks and prototypical networks coincide.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import FewShotClassifier, check_support
from .protonet import DISTANCES, negative_distance


def attention_log_probs(scores: torch.Tensor, support_y: torch.Tensor, n_way: int) -> torch.Tensor:
    """``log sum_i a_i y_i`` from similarity scores, computed stably in log space.

    Args:
        scores: similarities c(f(x̂_q), g(x_i)) of shape (n_query, n_support).
        support_y: labels 0..n_way-1 of shape (n_support,).
        n_way: number of classes.

    Returns:
        Log-probabilities of shape (n_query, n_way); each row's exp sums to 1.
    """
    log_attention = scores.log_softmax(dim=1)  # (n_query, n_support)
    # log(sum over the support items of class k of a_i): a masked logsumexp per class
    mask = support_y[None, :] == torch.arange(n_way, device=scores.device)[:, None]  # (n_way, n_support)
    masked = log_attention[:, None, :].masked_fill(~mask[None], float("-inf"))  # (n_query, n_way, n_support)
    return masked.logsumexp(dim=2)


class FullContextEmbeddings(nn.Module):
    """The FCE of Vinyals et al.: the support set and the query see each other.

    ``g``: a bidirectional LSTM over the support embeddings, ``g(x_i) = h_fwd + h_bwd + g'(x_i)``.
    ``f``: an attention LSTM run for ``steps`` steps; at step k the cell takes the query
    embedding and the readout ``r = sum_i softmax(h^T g(x_i)) g(x_i)`` (the readout is fed
    as part of the input rather than of the hidden state, a common variant), and
    ``h_k = LSTM(...) + f'(x̂)``.

    Args:
        dim: embedding size d.
        steps: attention-LSTM steps K.
    """

    def __init__(self, dim: int, steps: int = 3) -> None:
        super().__init__()
        self.support_lstm = nn.LSTM(dim, dim, bidirectional=True, batch_first=True)
        self.query_cell = nn.LSTMCell(2 * dim, dim)
        self.steps = steps

    def support(self, z: torch.Tensor) -> torch.Tensor:
        """(n_support, d) -> (n_support, d) context-aware support embeddings."""
        out, _ = self.support_lstm(z[None])  # (1, n_support, 2d)
        d = z.shape[1]
        return z + out[0, :, :d] + out[0, :, d:]

    def query(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """(n_query, d) and support (n_support, d) -> (n_query, d) query embeddings."""
        h, c = torch.zeros_like(q), torch.zeros_like(q)
        for _ in range(self.steps):
            readout = (h @ g.T).softmax(dim=1) @ g
            h, c = self.query_cell(torch.cat([q, readout], dim=1), (h, c))
            h = h + q
        return h


class MatchingNetworks(FewShotClassifier):
    """Soft nearest neighbour over the support set with attention.

    Args:
        backbone: maps inputs (B, *item_shape) to embeddings (B, d); ``nn.Identity()``
            for precomputed features.
        distance: similarity inside the attention: ``"cosine"`` (the paper's), or
            ``"squared_euclidean"``/``"euclidean"`` (negative distances).
        scale: multiplies the similarities before the softmax (an inverse temperature;
            the paper uses plain cosine similarities, ``scale=1``).
        fce_dim: set to the embedding size d to use full-context embeddings.
        fce_steps: attention-LSTM steps of the FCE.
    """

    def __init__(
        self,
        backbone: nn.Module,
        distance: str = "cosine",
        scale: float = 1.0,
        fce_dim: int | None = None,
        fce_steps: int = 3,
    ) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; use one of {DISTANCES}")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.backbone, self.distance, self.scale = backbone, distance, scale
        self.fce = FullContextEmbeddings(fce_dim, fce_steps) if fce_dim else None
        self.support_embeddings: torch.Tensor | None = None
        self.support_y: torch.Tensor | None = None
        self.n_way = 0

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *item_shape) -> (B, d)."""
        return self.backbone(x).flatten(1)

    def process_support_set(self, support_x: torch.Tensor, support_y: torch.Tensor) -> None:
        """Embed the support set (shape (n_support, *item_shape)), labels any order."""
        self.n_way = check_support(support_x, support_y)
        g = self.embed(support_x)
        self.support_embeddings = self.fce.support(g) if self.fce is not None else g
        self.support_y = support_y

    def attention(self, query_x: torch.Tensor) -> torch.Tensor:
        """Attention weights a(x̂_q, x_i) of shape (n_query, n_support); rows sum to 1."""
        return self._scores(query_x).softmax(dim=1)

    def _scores(self, query_x: torch.Tensor) -> torch.Tensor:
        if self.support_embeddings is None:
            raise RuntimeError("call process_support_set(support_x, support_y) before classifying queries")
        f = self.embed(query_x)
        if self.fce is not None:
            f = self.fce.query(f, self.support_embeddings)
        return self.scale * negative_distance(f, self.support_embeddings, self.distance)

    def forward(self, query_x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``log ŷ`` of shape (n_query, n_way) (use as logits)."""
        scores = self._scores(query_x)
        assert self.support_y is not None
        return attention_log_probs(scores, self.support_y, self.n_way)
