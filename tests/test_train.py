"""Supervised training helpers: oracles for accuracy/augmentation, learning on separable
data, determinism under a generator, bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fsl_utils.data import few_labels
from fsl_utils.evaluation import accuracy, embed, evaluate_accuracy
from fsl_utils.training import random_affine, random_crop_flip, train_supervised


def test_accuracy_matches_a_loop_oracle():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(50, 4, generator=g), torch.randint(0, 4, (50,), generator=g)
    expected = 100 * np.mean([int(np.argmax(row)) == int(y) for row, y in zip(logits.numpy(), labels.numpy())])
    assert accuracy(logits, labels) == pytest.approx(expected)
    with pytest.raises(ValueError, match="shape"):
        accuracy(logits[:3], labels)


def test_random_crop_flip_is_a_shifted_window_of_the_padded_image():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 3, 8, 8, generator=g)
    out = random_crop_flip(x, torch.Generator().manual_seed(2), padding=2)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(len(x)):  # oracle: some crop of the padded image, maybe mirrored
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    same = random_crop_flip(x, torch.Generator().manual_seed(2), padding=2)
    assert torch.equal(out, same)
    assert not torch.equal(out, x)


def test_few_labels_draws_k_per_class_deterministically():
    labels = torch.arange(5).repeat(30)
    idx = few_labels(labels, 4, torch.Generator().manual_seed(0))
    assert idx.shape == (20,)
    assert torch.bincount(labels[idx]).tolist() == [4] * 5
    assert len(set(idx.tolist())) == 20
    assert torch.equal(idx, few_labels(labels, 4, torch.Generator().manual_seed(0)))
    assert not torch.equal(idx, few_labels(labels, 4, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="fewer than per_class"):
        few_labels(labels, 31)


def _blobs(n: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 8, generator=g) * 3
    y = torch.randint(0, 3, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


def test_a_linear_head_on_features_learns_separable_classes_and_is_deterministic():
    x, y = _blobs()

    def head() -> nn.Linear:
        torch.manual_seed(0)
        linear = nn.Linear(8, 3)
        train_supervised(linear, x[:200], y[:200], epochs=50, batch_size=256, lr=1e-2, weight_decay=1e-4,
                         generator=torch.Generator().manual_seed(0), progress=False)
        return linear

    first = head()
    assert evaluate_accuracy(first, x[200:], y[200:]) > 95
    assert torch.allclose(first.weight, head().weight)


def test_fit_trains_only_parameters_that_require_grad_and_reduces_loss():
    x, y = _blobs()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    model[0].requires_grad_(False)
    frozen = model[0].weight.clone()
    history = train_supervised(model, x, y, epochs=20, batch_size=32, lr=1e-2, generator=torch.Generator().manual_seed(0), progress=False)
    assert len(history.values["train loss"]) == 20 * 10
    assert np.mean(history.values["train loss"][-10:]) < 0.5 * np.mean(history.values["train loss"][:10])
    assert torch.equal(model[0].weight, frozen)
    assert not model.training


def test_fit_on_uint8_images_with_augmentation_and_bn_eval():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = (images.float().mean(dim=(1, 2, 3)) > images.float().mean()).long()
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(256, 2))
    seen = []

    def augment(x, gen):
        seen.append((x.dtype, float(x.max())))
        return random_crop_flip(x, gen, padding=1)

    running = model[1].running_mean.clone()
    history = train_supervised(model, images, labels, steps=3, batch_size=16, augment=augment, bn_eval=True, progress=False)
    assert len(history.values["train loss"]) == 3 and len(seen) == 3
    assert all(dtype == torch.float32 and peak <= 1.0 for dtype, peak in seen)
    assert torch.equal(model[1].running_mean, running)  # BN statistics untouched in bn_eval mode
    assert embed(model, images).shape == (40, 2)


def test_fit_rejects_bad_inputs():
    x, y = _blobs(20)
    model = nn.Linear(8, 3)
    with pytest.raises(ValueError, match="pair up"):
        train_supervised(model, x, y[:-1], steps=1)
    with pytest.raises(ValueError, match="int64"):
        train_supervised(model, x, y.float(), steps=1)
    with pytest.raises(ValueError, match="steps or epochs"):
        train_supervised(model, x, y)
    with pytest.raises(ValueError, match="optimizer"):
        train_supervised(model, x, y, steps=1, optimizer="lbfgs")
    with pytest.raises(ValueError, match="no trainable"):
        train_supervised(model.requires_grad_(False), x, y, steps=1)


def test_random_affine_identity_and_quarter_turn_oracles():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 1, 12, 12, generator=g)
    same = random_affine(x, degrees=0, translate=0, scale=(1, 1), shear=0)
    assert torch.allclose(same, x, atol=1e-5)
    quarter = random_affine(x, degrees=(90, 90), translate=0, scale=(1, 1), shear=0)
    assert torch.allclose(quarter, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5)  # counter-clockwise


def test_random_affine_zoom_fill_and_determinism():
    x = torch.ones(2, 1, 16, 16)
    small = random_affine(x, degrees=0, translate=0, scale=(0.5, 0.5), shear=0)
    assert small.sum(dim=(1, 2, 3)).tolist() == pytest.approx([64.0, 64.0], abs=8)  # a quarter of the area
    white = random_affine(torch.ones(2, 1, 16, 16), degrees=0, translate=0, scale=(0.5, 0.5), shear=0, fill=1.0)
    assert torch.allclose(white, torch.ones_like(white))
    y = torch.rand(5, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    a = random_affine(y, torch.Generator().manual_seed(7))
    assert torch.equal(a, random_affine(y, torch.Generator().manual_seed(7)))
    assert not torch.allclose(a, y)
    with pytest.raises(ValueError, match="batch"):
        random_affine(y[0])
