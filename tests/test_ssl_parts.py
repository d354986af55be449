"""The SSL building blocks: CIFAR CNN, heads, splits, endless batches and evaluation helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fsl_utils.encoders import CifarCNN
from fsl_utils.data import to_float
from fsl_utils.evaluation import embed, evaluate_accuracy
from fsl_utils.ssl import (
    PredictionHead,
    ProjectionHead,
    embedding_std,
    linear_probe,
    random_batches,
    semi_supervised_split,
)


def test_cifar_cnn_shapes_and_encoder_only_mode():
    x = torch.rand(5, 3, 32, 32)
    model = CifarCNN(10, widths=(8, 16, 16, 24))
    assert model(x).shape == (5, 10) and model.features(x).shape == (5, 24) and model.feature_dim == 24
    encoder = CifarCNN(0, widths=(8, 16))
    assert encoder(x).shape == (5, 16)
    assert CifarCNN(10)(torch.rand(2, 3, 48, 48)).shape == (2, 10)  # global pooling: any size


def test_cifar_cnn_normalises_with_cifar_statistics():
    from fsl_utils.data.cifar import MEAN, STD

    normalize = CifarCNN().encoder[0]
    x = torch.tensor(MEAN).view(1, 3, 1, 1).expand(1, 3, 2, 2) + torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(normalize(x), torch.ones(1, 3, 2, 2))


def test_cifar_cnn_rejects_bad_input():
    with pytest.raises(TypeError, match="to_float"):
        CifarCNN()(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        CifarCNN()(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="widths"):
        CifarCNN(widths=())


def test_heads_shapes_and_errors():
    h = torch.randn(6, 32)
    assert ProjectionHead(32, 64, 16)(h).shape == (6, 16)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in ProjectionHead(32, 64, 16, batch_norm=False))
    assert PredictionHead(16, 32)(torch.randn(6, 16)).shape == (6, 16)
    with pytest.raises(ValueError, match=r"\(B, 32\)"):
        ProjectionHead(32)(torch.randn(6, 31))
    with pytest.raises(ValueError, match="positive"):
        ProjectionHead(0)


def test_semi_supervised_split_is_balanced_disjoint_complete_and_seeded():
    labels = torch.arange(10).repeat_interleave(30)[torch.randperm(300, generator=torch.Generator().manual_seed(0))]
    split = semi_supervised_split(labels, 40, 20, torch.Generator().manual_seed(1))
    assert len(split.labeled) == 40 and len(split.holdout) == 20 and len(split.unlabeled) == 240
    assert torch.bincount(labels[split.labeled], minlength=10).tolist() == [4] * 10
    assert torch.bincount(labels[split.holdout], minlength=10).tolist() == [2] * 10
    assert torch.equal(torch.cat(split).sort().values, torch.arange(300))
    again = semi_supervised_split(labels, 40, 20, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(split, again))
    other = semi_supervised_split(labels, 40, 20, torch.Generator().manual_seed(2))
    assert not torch.equal(split.labeled, other.labeled)


def test_semi_supervised_split_rejects_bad_counts():
    labels = torch.arange(10).repeat(5)
    with pytest.raises(ValueError, match="multiple of the 10 classes"):
        semi_supervised_split(labels, 25)
    with pytest.raises(ValueError, match="fewer than"):
        semi_supervised_split(labels, 40, 20)


def test_random_batches_cover_every_index_once_per_epoch():
    batches = random_batches(10, 4, torch.Generator().manual_seed(0))
    first = torch.cat([next(batches) for _ in range(5)])  # 20 indices = two epochs
    assert all(len(b) == 4 for b in first.split(4))
    assert sorted(first[:10].tolist()) == list(range(10)) and sorted(first[10:].tolist()) == list(range(10))
    assert len(next(random_batches(3, 8))) == 8
    with pytest.raises(ValueError, match="positive"):
        next(random_batches(0, 4))


def test_embed_and_accuracy_agree_with_a_direct_forward_pass():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (23, 3, 32, 32), dtype=torch.uint8)
    model = CifarCNN(10, widths=(8, 8))
    model.train()
    with torch.no_grad():
        expected = model.eval()(to_float(images))
    model.train()
    out = embed(model, images, batch_size=5)
    assert torch.allclose(out, expected, atol=1e-5) and model.training  # restores the mode
    labels = torch.randint(0, 10, (23,))
    oracle = 100.0 * np.mean([int(o.argmax()) == int(y) for o, y in zip(expected, labels)])
    assert evaluate_accuracy(model, images, labels, batch_size=7) == pytest.approx(oracle)
    assert torch.equal(embed(model, to_float(images), batch_size=5), out)  # float inputs in [0, 1] give the same
    with pytest.raises(ValueError, match="labels"):
        evaluate_accuracy(model, images, labels[:3])


def test_linear_probe_separates_separable_features_and_not_noise():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat(50)
    centres = torch.randn(4, 8, generator=g) * 5
    features = centres[labels] + torch.randn(200, 8, generator=g)
    assert linear_probe(features[:100], labels[:100], features[100:], labels[100:]) > 95
    noise = torch.randn(200, 8, generator=g)
    assert linear_probe(noise[:100], labels[:100], noise[100:], labels[100:]) < 50
    with pytest.raises(ValueError, match="same d"):
        linear_probe(features[:10], labels[:10], features[:10, :3], labels[:10])


def test_embedding_std_is_zero_for_collapse_and_about_one_over_sqrt_d_for_spread():
    d = 64
    assert embedding_std(torch.ones(100, d) * 3) == pytest.approx(0.0, abs=1e-7)
    spread = embedding_std(torch.randn(5000, d, generator=torch.Generator().manual_seed(0)))
    assert spread == pytest.approx(1 / np.sqrt(d), rel=0.05)
    with pytest.raises(ValueError, match="n >= 2"):
        embedding_std(torch.ones(1, d))
