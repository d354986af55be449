"""Batch augmentations: per-image randomness, shapes and dtypes, torchvision's RandAugment inside."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from fsl_utils.ssl import BatchAugment, simclr_augment, strong_augment, to_float, weak_augment


@pytest.fixture(scope="module")
def images(cifar_train):
    return cifar_train.images[:16]


@pytest.mark.parametrize("make", [weak_augment, strong_augment, simclr_augment, lambda: simclr_augment(p_blur=1.0, hue=0.0)])
def test_augment_keeps_shape_dtype_and_restores_threads(images, make):
    threads = torch.get_num_threads()
    out = make()(images)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.get_num_threads() == threads
    assert not torch.equal(out, images)


@pytest.mark.parametrize("make", [weak_augment, strong_augment, simclr_augment])
def test_each_image_gets_its_own_random_parameters(images, make):
    same = images[:1].expand(12, -1, -1, -1).contiguous()
    out = make()(same)
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) >= 8  # one shared draw would give a single distinct output


def test_weak_augment_without_padding_only_flips(images):
    out = weak_augment(padding=0)(images)
    for x, y in zip(images, out):
        assert torch.equal(y, x) or torch.equal(y, x.flip(-1))
    assert any(not torch.equal(y, x) for x, y in zip(images, out))


def test_strong_augment_uses_torchvision_randaugment():
    composed = strong_augment().transform
    assert any(isinstance(t, v2.RandAugment) for t in composed.transforms)


def test_augment_is_reproducible_under_the_global_seed(images):
    aug = simclr_augment()
    torch.manual_seed(3)
    a = aug(images)
    torch.manual_seed(3)
    assert torch.equal(a, aug(images))


def test_augment_and_to_float_reject_bad_input(images):
    with pytest.raises(TypeError, match="uint8"):
        weak_augment()(images.float())
    with pytest.raises(ValueError, match="batch"):
        weak_augment()(images[0])
    with pytest.raises(ValueError, match="channels"):
        BatchAugment(v2.Grayscale(1))(images)
    assert BatchAugment(v2.Resize(16))(images).shape == (16, 3, 16, 16)
    assert simclr_augment(size=16)(images).shape == (16, 3, 16, 16)
    with pytest.raises(ValueError, match="crop=True"):
        simclr_augment(crop=False, color=False)
    x = to_float(images)
    assert x.dtype == torch.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert torch.allclose(x * 255, images.float())
    with pytest.raises(TypeError):
        to_float(x)
