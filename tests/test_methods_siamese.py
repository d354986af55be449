"""Siamese networks (Koch et al. 2015), the contrastive loss and balanced pair sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fsl_utils.encoders import Conv4
from fsl_utils.data import ClassImages, EpisodeSampler
from fsl_utils.methods import SiameseClassifier, SiameseNetwork, balanced_pair_bce, contrastive_loss
from fsl_utils.data.pairs import PairSampler
from seeds import rng


def test_pair_logits_are_koch_weighted_l1():
    net = SiameseNetwork(nn.Identity(), 5).double()
    g = rng(0)
    z1, z2 = torch.randn(4, 5, generator=g, dtype=torch.float64), torch.randn(4, 5, generator=g, dtype=torch.float64)
    alpha, beta = net.head.weight.detach().numpy()[0], net.head.bias.item()
    oracle = np.array([alpha @ np.abs(a - b) + beta for a, b in zip(z1.numpy(), z2.numpy())])
    np.testing.assert_allclose(net.pair_logits(z1, z2).detach().numpy(), oracle, rtol=1e-10)


def test_twins_share_weights_so_the_score_is_symmetric():
    net = SiameseNetwork(Conv4(hidden=8), 8).eval()
    x1, x2 = torch.rand(3, 1, 28, 28, generator=rng(1)), torch.rand(3, 1, 28, 28, generator=rng(2))
    with torch.no_grad():
        assert torch.allclose(net(x1, x2), net(x2, x1), atol=1e-6)
        assert net(x1, x2).shape == (3,)


def test_score_matrix_equals_pairwise_loop():
    net = SiameseNetwork(nn.Identity(), 6)
    zq, zs = torch.randn(4, 6, generator=rng(3)), torch.randn(7, 6, generator=rng(4))
    loop = torch.stack([torch.stack([net.pair_logits(a[None], b[None])[0] for b in zs]) for a in zq])
    assert torch.allclose(net.score_matrix(zq, zs), loop, atol=1e-6)


@pytest.mark.parametrize("aggregate", ["max", "mean"])
def test_classifier_scores_each_class_by_its_support_images(aggregate):
    net = SiameseNetwork(nn.Identity(), 6)
    s, q = torch.randn(9, 6, generator=rng(5)), torch.randn(4, 6, generator=rng(6))
    y = torch.tensor([2, 0, 1, 1, 0, 2, 2, 1, 0])  # unsorted
    clf = SiameseClassifier(net, aggregate)
    clf.process_support_set(s, y)
    logits = clf(q)
    pair = net.score_matrix(q, s)
    for c in range(3):
        expected = pair[:, y == c].amax(1) if aggregate == "max" else pair[:, y == c].mean(1)
        assert torch.allclose(logits[:, c], expected, atol=1e-6)
    # support order does not matter
    perm = torch.randperm(9, generator=rng(7))
    clf.process_support_set(s[perm], y[perm])
    assert torch.allclose(clf(q), logits, atol=1e-6)


def test_one_shot_prediction_is_the_best_matching_support_image():
    net = SiameseNetwork(nn.Identity(), 4)
    episode = EpisodeSampler(torch.randn(30, 3, 4, generator=rng(8)), 20, 1, 1, generator=rng(9)).sample()
    clf = SiameseClassifier(net)
    clf.process_support_set(episode.support_x, episode.support_y)
    logits = clf(episode.query_x)
    assert logits.shape == (20, 20)
    assert torch.equal(logits.argmax(1), net.score_matrix(episode.query_x, episode.support_x).argmax(1))


def test_contrastive_loss_matches_hadsell_et_al():
    d = torch.tensor([0.2, 1.5, 0.3, 0.9], dtype=torch.float64)
    same = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    m = 1.0
    oracle = np.mean([0.5 * x**2 if s else 0.5 * max(0.0, m - x) ** 2 for x, s in zip(d.tolist(), same.tolist())])
    assert contrastive_loss(d, same, margin=m).item() == pytest.approx(oracle, rel=1e-12)
    assert contrastive_loss(torch.tensor([2.0]), torch.tensor([0.0])).item() == 0.0  # beyond the margin: free


def test_balanced_pair_bce_matches_a_loop_over_pairs():
    g = rng(13)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    logits = torch.randn(6, 6, generator=g, dtype=torch.float64)
    same_terms, diff_terms = [], []
    for i in range(6):
        for j in range(6):
            if i == j:
                continue
            p = 1 / (1 + np.exp(-logits[i, j].item()))
            if labels[i] == labels[j]:
                same_terms.append(-np.log(p))
            else:
                diff_terms.append(-np.log(1 - p))
    oracle = 0.5 * (np.mean(same_terms) + np.mean(diff_terms))
    assert balanced_pair_bce(logits, labels).item() == pytest.approx(oracle, rel=1e-10)
    with pytest.raises(ValueError, match=">= 2 per class"):
        balanced_pair_bce(logits[:3, :3], torch.tensor([0, 1, 2]))


def coded_classes(n_classes=6, per_class=4):
    codes = torch.arange(n_classes * per_class).view(n_classes, per_class)
    return ClassImages(codes[:, :, None, None].expand(-1, -1, 3, 3).to(torch.uint8), [f"c{i}" for i in range(n_classes)])


def test_pairs_are_balanced_and_correct():
    data = coded_classes()
    pairs = PairSampler(data, batch_size=200, generator=rng(10)).sample()
    assert pairs.x1.shape == (200, 1, 3, 3) and pairs.x1.dtype == torch.float32
    code1, code2 = (pairs.x1[:, 0, 0, 0] * 255).round().long(), (pairs.x2[:, 0, 0, 0] * 255).round().long()
    assert torch.equal(pairs.same, torch.cat([torch.ones(100), torch.zeros(100)]))
    # the recorded classes are the images' classes, same pairs never repeat an image
    assert torch.equal(code1 // 4, pairs.classes[:, 0]) and torch.equal(code2 // 4, pairs.classes[:, 1])
    assert torch.equal((pairs.classes[:, 0] == pairs.classes[:, 1]).float(), pairs.same)
    assert (code1[:100] != code2[:100]).all()
    # every class and every drawing gets used
    assert set(pairs.classes.flatten().tolist()) == set(range(6)) and set(code1.tolist()) == set(range(24))


def test_pairs_are_reproducible_and_finite_iteration():
    data = coded_classes()
    a = list(PairSampler(data, 8, n_batches=3, generator=rng(11)))
    b = list(PairSampler(data, 8, n_batches=3, generator=rng(11)))
    assert len(a) == 3 and all(torch.equal(x.x1, y.x1) and torch.equal(x.x2, y.x2) for x, y in zip(a, b))


def test_pair_sampler_errors():
    with pytest.raises(ValueError, match="even"):
        PairSampler(coded_classes(), batch_size=7)
    with pytest.raises(ValueError, match=">= 2 classes"):
        PairSampler(torch.zeros(1, 5, 3, 3), batch_size=4)


def test_bce_training_step_on_pairs_reduces_loss():
    torch.manual_seed(0)
    # two clusters of 1-d "images": same-class pairs are close, different ones far
    centers = torch.randn(8, 1, 6) * 3
    data = centers + 0.1 * torch.randn(8, 10, 6)
    net = SiameseNetwork(nn.Linear(6, 6), 6)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    sampler = PairSampler(data, 64, generator=rng(12))
    losses = []
    for pairs in [sampler.sample() for _ in range(150)]:
        loss = F.binary_cross_entropy_with_logits(net(pairs.x1, pairs.x2), pairs.same)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


@pytest.mark.parametrize("zero_weight", [False, True])
def test_score_matrix_values_and_gradients_equal_the_broadcast_formula(zero_weight):
    # score_matrix splits the weights into positive and negative parts and calls cdist(p=1); the
    # values and every gradient (embeddings, weights, bias) must be those of sum_j w_j |a_j - b_j| + b,
    # with weights of both signs, and with a weight of exactly 0 (which the split could not train)
    net = SiameseNetwork(nn.Identity(), 12).double()
    with torch.no_grad():
        net.head.weight.copy_(torch.randn(1, 12, generator=rng(10), dtype=torch.float64))
        if zero_weight:
            net.head.weight[0, 3] = 0.0
    assert (net.head.weight < 0).any() and (net.head.weight > 0).any()
    zq = torch.randn(5, 12, generator=rng(11), dtype=torch.float64, requires_grad=True)
    zs = torch.randn(7, 12, generator=rng(12), dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(5, 7, generator=rng(13), dtype=torch.float64)
    params = [zq, zs, net.head.weight, net.head.bias]

    fast = net.score_matrix(zq, zs)
    fast_grads = torch.autograd.grad(fast, params, upstream)
    broadcast = ((zq[:, None] - zs[None]).abs() * net.head.weight[0]).sum(-1) + net.head.bias
    broadcast_grads = torch.autograd.grad(broadcast, params, upstream)
    torch.testing.assert_close(fast, broadcast, rtol=1e-12, atol=1e-12)
    for name, a, b in zip(["zq", "zs", "weight", "bias"], fast_grads, broadcast_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=lambda m, name=name: f"gradient of {name}: {m}")
    if zero_weight:
        assert fast_grads[2][0, 3] != 0  # the zero weight still learns


def test_score_matrix_trains_the_same_network_in_float32():
    # all-pairs training steps through score_matrix and through the broadcast agree to float rounding
    def run(score):
        torch.manual_seed(0)
        net = SiameseNetwork(nn.Sequential(Conv4(hidden=8), nn.Flatten()), 8)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        x, y = torch.rand(24, 1, 28, 28, generator=rng(14)), torch.arange(6).repeat_interleave(4)
        for _ in range(3):
            z = net.embed(x)
            loss = balanced_pair_bce(score(net, z), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item(), net.head.weight.detach().clone()

    fast = run(lambda net, z: net.score_matrix(z, z))
    broadcast = run(lambda net, z: net.pair_logits(z[:, None], z[None]))
    assert fast[0] == pytest.approx(broadcast[0], rel=1e-5)
    torch.testing.assert_close(fast[1], broadcast[1], rtol=1e-4, atol=1e-6)
