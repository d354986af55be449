"""Matching networks: the attention read-out against a numpy oracle, and the one-shot
equivalence with prototypical networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fsl_utils.encoders import Conv4
from fsl_utils.data import EpisodeSampler
from fsl_utils.methods import MatchingNetworks, PrototypicalNetworks
from fsl_utils.methods.matching import attention_log_probs
from seeds import rng


def oracle_matching(q, s, y, n_way, scale=1.0):
    """Vinyals et al. eq. 1-2 literally: y_hat = sum_i softmax_i(c(q, s_i)) * onehot(y_i)."""
    out = []
    for a in q:
        c = np.array([scale * a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in s])
        att = np.exp(c - c.max())
        att /= att.sum()
        out.append(sum(att[i] * np.eye(n_way)[y[i]] for i in range(len(s))))
    return np.log(np.array(out))


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_matching_log_probs_match_the_paper_equation(scale):
    g = rng(0)
    s = torch.randn(12, 6, generator=g, dtype=torch.float64)
    y = torch.arange(4).repeat_interleave(3)[torch.randperm(12, generator=g)]
    q = torch.randn(5, 6, generator=g, dtype=torch.float64)
    method = MatchingNetworks(nn.Identity(), scale=scale)
    method.process_support_set(s, y)
    logits = method(q)
    np.testing.assert_allclose(logits.numpy(), oracle_matching(q.numpy(), s.numpy(), y.numpy(), 4, scale), rtol=1e-9)
    assert torch.allclose(logits.exp().sum(1), torch.ones(5, dtype=torch.float64))
    att = method.attention(q)
    assert att.shape == (5, 12) and torch.allclose(att.sum(1), torch.ones(5, dtype=torch.float64))


def test_attention_log_probs_is_stable_for_large_scores():
    scores = torch.tensor([[1000.0, -1000.0, 0.0]])
    out = attention_log_probs(scores, torch.tensor([0, 1, 1]), 2)
    assert torch.isfinite(out).all() and torch.allclose(out.exp().sum(), torch.tensor(1.0))


@pytest.mark.parametrize("distance", ["squared_euclidean", "cosine", "euclidean"])
def test_one_shot_matching_equals_protonet_with_the_same_distance(distance):
    torch.manual_seed(0)
    backbone = Conv4(hidden=8).eval()
    episode = EpisodeSampler(torch.rand(10, 5, 1, 28, 28, generator=rng(1)), 5, 1, 3, generator=rng(2)).sample()
    matching = MatchingNetworks(backbone, distance=distance)
    proto = PrototypicalNetworks(backbone, distance=distance)
    with torch.no_grad():
        for m in (matching, proto):
            m.process_support_set(episode.support_x, episode.support_y)
        a, b = matching(episode.query_x), proto(episode.query_x).log_softmax(1)
    assert torch.allclose(a, b, atol=1e-5)


def test_with_several_shots_matching_differs_from_protonet():
    g = rng(3)
    s, y, q = torch.randn(10, 4, generator=g), torch.arange(2).repeat_interleave(5), torch.randn(6, 4, generator=g)
    matching, proto = MatchingNetworks(nn.Identity(), distance="squared_euclidean"), PrototypicalNetworks(nn.Identity())
    matching.process_support_set(s, y)
    proto.process_support_set(s, y)
    assert not torch.allclose(matching(q), proto(q).log_softmax(1), atol=1e-3)


def test_support_order_does_not_matter_without_fce():
    g = rng(4)
    s, y, q = torch.randn(9, 5, generator=g), torch.arange(3).repeat_interleave(3), torch.randn(4, 5, generator=g)
    method = MatchingNetworks(nn.Identity())
    method.process_support_set(s, y)
    a = method(q)
    perm = torch.randperm(9, generator=g)
    method.process_support_set(s[perm], y[perm])
    assert torch.allclose(a, method(q), atol=1e-6)


@pytest.mark.parametrize("n,k,q", [(2, 1, 1), (5, 1, 3), (5, 5, 2), (20, 1, 1)])
@pytest.mark.parametrize("fce", [False, True])
def test_shapes_and_gradients(n, k, q, fce):
    data = torch.rand(25, 8, 1, 28, 28, generator=rng(5))
    episode = EpisodeSampler(data, n, k, q, generator=rng(6)).sample()
    method = MatchingNetworks(Conv4(hidden=8), fce_dim=8 if fce else None)
    method.process_support_set(episode.support_x, episode.support_y)
    logits = method(episode.query_x)
    assert logits.shape == (n * q, n)
    assert torch.allclose(logits.exp().sum(1), torch.ones(n * q), atol=1e-5)
    F.cross_entropy(logits, episode.query_y).backward()
    assert all(p.grad is not None for p in method.parameters())


def test_errors():
    with pytest.raises(ValueError, match="unknown distance"):
        MatchingNetworks(nn.Identity(), distance="l1")
    with pytest.raises(ValueError, match="scale"):
        MatchingNetworks(nn.Identity(), scale=0)
    with pytest.raises(RuntimeError, match="process_support_set"):
        MatchingNetworks(nn.Identity())(torch.zeros(2, 3))
