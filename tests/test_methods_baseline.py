"""The "closer look" baselines (Chen et al. 2019): the cosine head against a numpy oracle,
the per-episode fine-tuning, the supervised pre-training, and the leaderboard's encoder path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fsl_utils.data import ClassImages, EpisodeSampler
from fsl_utils.evaluation.leaderboard import Contender, run_leaderboard
from fsl_utils.methods.baseline import BaselineFinetune, CosineClassifier, chen_scale, pretrain_classifier


def test_cosine_classifier_matches_the_numpy_oracle():
    torch.manual_seed(0)
    head = CosineClassifier(6, 4, scale=3.0)
    z = torch.randn(5, 6)
    w = head.weight.detach().numpy()
    expected = np.array([[3.0 * zi @ wk / np.linalg.norm(zi) / np.linalg.norm(wk) for wk in w] for zi in z.numpy()])
    assert np.allclose(head(z).detach().numpy(), expected, atol=1e-6)
    assert chen_scale(5) == 2.0 and chen_scale(200) == 2.0 and chen_scale(964) == 10.0
    assert CosineClassifier(6, 964).scale == 10.0


def _clusters(seed=0, n_way=5, per_class=8, dim=16):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(n_way, dim, generator=g)
    x = centres[:, None] + 0.3 * torch.randn(n_way, per_class, dim, generator=g)
    return x  # (n_way, per_class, dim)


@pytest.mark.parametrize("cosine", [False, True])
def test_finetuned_head_separates_clusters_and_is_deterministic(cosine):
    x = _clusters()
    episode = EpisodeSampler(x, 5, 3, 5, generator=torch.Generator().manual_seed(1)).sample()
    method = BaselineFinetune(nn.Identity(), cosine=cosine)
    with pytest.raises(RuntimeError, match="process_support_set"):
        method(episode.query_x)
    method.process_support_set(episode.support_x, episode.support_y)
    logits = method(episode.query_x)
    assert logits.shape == (25, 5)
    assert (logits.argmax(1) == episode.query_y).all()
    if cosine:
        assert logits.abs().max() <= chen_scale(5) + 1e-5
    again = BaselineFinetune(nn.Identity(), cosine=cosine)
    again.process_support_set(episode.support_x, episode.support_y)
    assert torch.equal(again(episode.query_x), logits)  # the same initialisation every episode
    with pytest.raises(ValueError, match="steps"):
        BaselineFinetune(nn.Identity(), steps=0)


@pytest.mark.parametrize("cosine", [False, True])
def test_pretraining_lowers_the_loss_on_the_base_classes(cosine):
    g = torch.Generator().manual_seed(0)
    prototypes = (torch.rand(6, 1, 8, 8, generator=g) > 0.5).float()
    noisy = (prototypes[:, None] + 0.2 * torch.randn(6, 10, 1, 8, 8, generator=g)).clamp(0, 1)
    data = ClassImages((255 * noisy[:, :, 0]).to(torch.uint8), [f"c{i}" for i in range(6)])
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
    trained, losses = pretrain_classifier(data, backbone, 16, steps=60, cosine=cosine, batch_size=32, lr=1e-2, progress=False)
    assert trained is backbone and not trained.training
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


def test_the_leaderboard_embeds_once_with_the_same_predictions():
    x = _clusters(2, n_way=6, per_class=12)
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(16, 8), nn.ReLU())
    build = lambda: BaselineFinetune(encoder, cosine=True)  # noqa: E731
    on_items = run_leaderboard([Contender("b++", build)], {"images": x}, "toy", shots=(1, 3), n_query=4, n_episodes=5, progress=False)
    embedded = run_leaderboard([Contender("b++", build, encoder="backbone")], {"images": x}, "toy", shots=(1, 3), n_query=4,
                               n_episodes=5, progress=False)
    for a, b in zip(on_items, embedded):
        assert a.accuracies == pytest.approx(b.accuracies)
