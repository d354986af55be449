"""Batch augmentations: per-image randomness, shapes and dtypes, torchvision's RandAugment inside."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms import v2

from fsl_utils.data import to_float
from fsl_utils.ssl import BatchAugment, BatchedSimCLR, simclr_augment, strong_augment, weak_augment


@pytest.fixture(scope="module")
def images(cifar_train):
    return cifar_train.images[:16]


@pytest.mark.parametrize("make", [weak_augment, strong_augment, simclr_augment, lambda: simclr_augment(p_blur=1.0, hue=0.0)])
def test_augment_keeps_shape_dtype_and_restores_threads(images, make):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # not the augmentation's own 1 (the test session runs with one thread: conftest.py)
    try:
        out = make()(images)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert out.shape == images.shape and out.dtype == torch.uint8
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


def test_augment_rejects_bad_input_and_to_float_scales(images):
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
    assert torch.equal(to_float(x), x)  # float tensors are taken to be in [0, 1] already


# -- the batched SimCLR views (simclr_augment(batched=True)) --------------------------------------------
def test_batched_colour_operations_match_torchvision():
    from torchvision.transforms.v2 import functional as TF

    from fsl_utils.ssl.augment import _colour_op

    x = torch.rand(6, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    for op, fn, factor in ((0, TF.adjust_brightness, 1.3), (1, TF.adjust_contrast, 0.7), (2, TF.adjust_saturation, 1.4),
                           (3, TF.adjust_hue, 0.08), (3, TF.adjust_hue, -0.1)):
        ours = _colour_op(op, x.clone(), torch.full((6, 1, 1, 1), factor))
        assert torch.allclose(ours, torch.stack([fn(xi, factor) for xi in x]), atol=1e-5), (op, factor)


def test_batched_crop_boxes_follow_random_resized_crop():
    aug = simclr_augment(batched=True)
    boxes = aug.boxes(5000, 32, 32, torch.Generator().manual_seed(0))
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 32).all() and (boxes[:, 3] <= 32).all()
    area = w * h / 1024
    assert area.min() > 0.15 and area.max() <= 1.0 and 0.45 < area.mean() < 0.75  # U(0.2, 1) up to rounding and fitting
    assert ((w / h) > 1.2).any() and ((w / h) < 0.8).any() and ((w / h).log().abs() < math.log(4 / 3) + 0.15).all()


def test_batched_views_without_crop_change_and_colour_keep_the_image_or_its_mirror(images):
    aug = BatchedSimCLR(32, scale=(1.0, 1.0), color=False)
    aug.boxes = lambda n, h, w, g=None: torch.tensor([[0.0, 0.0, w, h]]).repeat(n, 1)  # the whole image
    out = aug(images)
    for x, y in zip(images, out):
        assert torch.equal(y, x) or torch.equal(y, x.flip(-1))
    assert any(torch.equal(y, x.flip(-1)) for x, y in zip(images, out))


def test_batched_views_are_per_image_reproducible_and_distributed_like_torchvision(images):
    aug = simclr_augment(size=16, batched=True)
    out = aug(images)
    assert out.shape == (16, 3, 16, 16) and out.dtype == torch.uint8
    torch.manual_seed(3)
    a = aug(images)
    torch.manual_seed(3)
    assert torch.equal(a, aug(images))
    same = images[:1].expand(12, -1, -1, -1).contiguous()
    assert len({tuple(o.flatten().tolist()) for o in aug(same)}) >= 8
    # one flat colour, 2,000 views: how often it is greyed and how far the mean colour moves, batched vs torchvision
    flat = torch.zeros(2000, 3, 8, 8, dtype=torch.uint8)
    flat[:, 0], flat[:, 1], flat[:, 2] = 170, 110, 70
    stats = {}
    for batched in (True, False):
        torch.manual_seed(0)
        views = simclr_augment(size=8, batched=batched)(flat).float()
        grey = (views.amax(1) - views.amin(1)).amax(dim=(1, 2)) <= 1
        shift = (views.mean(dim=(2, 3)) - torch.tensor([170.0, 110.0, 70.0])).abs().amax(1)
        stats[batched] = grey.float().mean().item(), shift.mean().item()
    assert abs(stats[True][0] - 0.2) < 0.04 and abs(stats[False][0] - 0.2) < 0.04, stats
    assert abs(stats[True][1] - stats[False][1]) < 0.1 * stats[False][1], stats


def test_batched_views_reject_bad_input(images):
    with pytest.raises(TypeError, match="uint8"):
        simclr_augment(batched=True)(images.float())
    with pytest.raises(ValueError, match="blur"):
        simclr_augment(batched=True, p_blur=0.5)
    with pytest.raises(ValueError, match="crop=True"):
        simclr_augment(batched=True, crop=False, color=False)
