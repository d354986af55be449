"""Prototypical networks and nearest centroid, against naive numpy oracles of Snell et al."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fsl_utils.encoders import Conv4
from fsl_utils.data import EpisodeSampler
from fsl_utils.methods import NearestCentroid, PrototypicalNetworks
from fsl_utils.methods.protonet import class_means, cosine_similarity_matrix, squared_euclidean
from seeds import rng


def unsorted_support(n_way=4, k_shot=3, d=5, seed=0):
    g = rng(seed)
    y = torch.arange(n_way).repeat_interleave(k_shot)[torch.randperm(n_way * k_shot, generator=g)]
    return torch.randn(n_way * k_shot, d, generator=g, dtype=torch.float64), y


def test_class_means_match_a_loop_over_unsorted_labels():
    z, y = unsorted_support()
    assert not torch.equal(y, y.sort().values)  # the labels really are shuffled
    protos = class_means(z, y, 4)
    zn, yn = z.numpy(), y.numpy()
    oracle = np.stack([zn[yn == k].mean(axis=0) for k in range(4)])
    np.testing.assert_allclose(protos.numpy(), oracle, rtol=1e-12)


def test_class_means_with_uneven_shots_and_missing_class():
    z = torch.tensor([[0.0, 0.0], [2.0, 2.0], [4.0, 0.0]])
    y = torch.tensor([1, 0, 1])
    assert torch.allclose(class_means(z, y), torch.tensor([[2.0, 2.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match="at least one support example"):
        class_means(z, y, n_way=3)


def test_squared_euclidean_and_cosine_match_numpy():
    g = rng(1)
    x, y = torch.randn(7, 6, generator=g, dtype=torch.float64), torch.randn(3, 6, generator=g, dtype=torch.float64)
    xn, yn = x.numpy(), y.numpy()
    d2 = np.array([[((a - b) ** 2).sum() for b in yn] for a in xn])
    cos = np.array([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in yn] for a in xn])
    np.testing.assert_allclose(squared_euclidean(x, y).numpy(), d2, rtol=1e-10)
    np.testing.assert_allclose(cosine_similarity_matrix(x, y).numpy(), cos, rtol=1e-10)
    assert squared_euclidean(x, x).diagonal().abs().max() < 1e-10 and (squared_euclidean(x, x) >= 0).all()


@pytest.mark.parametrize("distance", ["squared_euclidean", "euclidean", "cosine"])
def test_logits_are_negative_distances_to_prototypes(distance):
    z, y = unsorted_support()
    q = torch.randn(6, 5, generator=rng(2), dtype=torch.float64)
    method = PrototypicalNetworks(nn.Identity(), distance=distance)
    method.process_support_set(z, y)
    logits = method(q)
    zn, yn, qn = z.numpy(), y.numpy(), q.numpy()
    protos = np.stack([zn[yn == k].mean(axis=0) for k in range(4)])
    if distance == "cosine":
        oracle = np.array([[a @ c / np.linalg.norm(a) / np.linalg.norm(c) for c in protos] for a in qn])
    else:
        d2 = np.array([[((a - c) ** 2).sum() for c in protos] for a in qn])
        oracle = -d2 if distance == "squared_euclidean" else -np.sqrt(d2)
    np.testing.assert_allclose(logits.numpy(), oracle, rtol=1e-8, atol=1e-10)


def test_protonet_is_a_linear_classifier_snell_2_4():
    z, y = unsorted_support(n_way=5, k_shot=2, d=8)
    q = torch.randn(10, 8, generator=rng(3), dtype=torch.float64)
    method = PrototypicalNetworks(nn.Identity())
    method.process_support_set(z, y)
    W, b = method.linear_classifier()
    protos = class_means(z, y)
    assert torch.allclose(W, 2 * protos) and torch.allclose(b, -(protos**2).sum(1))
    linear = q @ W.T + b
    logits = method(q)
    # they differ by -||z||^2, the same for every class ...
    assert torch.allclose(logits - linear, -(q**2).sum(1, keepdim=True).expand_as(logits), atol=1e-10)
    # ... so the class probabilities and predictions are identical
    assert torch.allclose(logits.softmax(1), linear.softmax(1), atol=1e-12)
    assert torch.equal(logits.argmax(1), linear.argmax(1))
    with pytest.raises(ValueError, match="squared Euclidean"):
        cos = PrototypicalNetworks(nn.Identity(), distance="cosine")
        cos.process_support_set(z, y)
        cos.linear_classifier()


def test_support_order_does_not_matter():
    torch.manual_seed(0)
    method = PrototypicalNetworks(Conv4(hidden=8)).eval()
    x = torch.rand(15, 1, 28, 28, generator=rng(4))
    y = torch.arange(5).repeat_interleave(3)
    q = torch.rand(7, 1, 28, 28, generator=rng(5))
    with torch.no_grad():
        method.process_support_set(x, y)
        a = method(q)
        perm = torch.randperm(15, generator=rng(6))
        method.process_support_set(x[perm], y[perm])
        b = method(q)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("n,k,q", [(2, 1, 1), (5, 1, 3), (5, 5, 2), (20, 1, 1), (7, 3, 4)])
def test_shapes_for_n_way_k_shot_q_query(n, k, q):
    data = torch.randint(0, 256, (25, 10, 28, 28), dtype=torch.uint8, generator=rng(7))
    episode = EpisodeSampler(data, n, k, q, generator=rng(8)).sample()
    method = PrototypicalNetworks(Conv4(hidden=8))
    method.process_support_set(episode.support_x, episode.support_y)
    assert method.prototypes.shape == (n, 8)
    logits = method(episode.query_x)
    assert logits.shape == (n * q, n) and (logits <= 0).all()


def test_gradients_reach_the_backbone():
    method = PrototypicalNetworks(Conv4(hidden=8))
    episode = EpisodeSampler(torch.rand(6, 6, 1, 28, 28), 3, 2, 2, generator=rng(9)).sample()
    method.process_support_set(episode.support_x, episode.support_y)
    F.cross_entropy(method(episode.query_x), episode.query_y).backward()
    grads = [p.grad for p in method.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="unknown distance"):
        PrototypicalNetworks(nn.Identity(), distance="manhattan")
    with pytest.raises(RuntimeError, match="process_support_set"):
        PrototypicalNetworks(nn.Identity())(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="one label per support item"):
        PrototypicalNetworks(nn.Identity()).process_support_set(torch.zeros(4, 3), torch.tensor([0, 1]))


def test_nearest_centroid_uses_frozen_normalised_features():
    backbone = nn.Linear(4, 3)
    method = NearestCentroid(backbone)
    x = torch.randn(6, 4, generator=rng(10), requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    method.process_support_set(x, y)
    z = F.normalize(backbone(x), dim=1).detach()
    assert torch.allclose(method.prototypes, class_means(z, y), atol=1e-6)
    assert not method.prototypes.requires_grad  # frozen: no graph back to the backbone
    logits = method(x[:2])
    assert torch.allclose(logits, -squared_euclidean(z[:2], class_means(z, y)), atol=1e-6)
