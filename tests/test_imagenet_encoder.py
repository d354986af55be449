"""The offline ImageNet encoder: preprocessing, splitting for partial fine-tuning, the
feature cache."""

from __future__ import annotations

import pytest
import torch

from fsl_utils.encoders.features import extract_features
from fsl_utils.encoders.imagenet import Preprocess, load_imagenet_encoder


@pytest.fixture(scope="module")
def encoder():
    return load_imagenet_encoder("efficientnet_lite0", pretrained=True, input_size=64)


def test_preprocess_matches_the_lite_scaling_and_resizes():
    prep = Preprocess(16, "lite")
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(prep(x), (x * 255 - 127) / 128)
    assert prep(torch.rand(2, 3, 32, 32)).shape == (2, 3, 16, 16)
    gray = torch.rand(2, 1, 16, 16)
    assert torch.equal(prep(gray), prep(gray.expand(-1, 3, -1, -1)))
    imagenet = Preprocess(16, "imagenet")
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    assert torch.allclose(imagenet(x), (x - mean) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        prep(torch.rand(2, 2, 16, 16))
    with pytest.raises(ValueError, match="scaling"):
        Preprocess(16, "caffe")


def test_pretrained_weights_are_loaded_not_random(encoder):
    random = load_imagenet_encoder("efficientnet_lite0", pretrained=False, input_size=64)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = encoder(x), random(x)
    assert a.shape == b.shape == (4, 1280)
    assert not torch.allclose(a, b, atol=1e-3)


@pytest.mark.parametrize("n_top", [0, 1, 3])
def test_split_parts_compose_to_the_whole_network(encoder, n_top):
    bottom, top = encoder.split(n_top)
    x = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(top(bottom(x)), encoder(x), atol=1e-5)
    n_params = sum(p.numel() for p in encoder.parameters())
    shared = {id(p) for p in bottom.parameters()} | {id(p) for p in top.parameters()}
    assert shared <= {id(p) for p in encoder.parameters()}
    assert sum(p.numel() for p in bottom.parameters()) + sum(p.numel() for p in top.parameters()) <= n_params


def test_split_one_block_keeps_the_last_mbconv_and_head_on_top(encoder):
    bottom, top = encoder.split(1)
    with torch.no_grad():
        act = bottom(torch.rand(1, 3, 64, 64))
    assert act.shape == (1, 192, 2, 2)  # input of the last MBConv block at stride 32
    top_params = {id(p) for p in top.parameters()}
    assert id(encoder.body._blocks[-1]._project_conv.weight) in top_params
    assert id(encoder.body._conv_head.weight) in top_params
    assert id(encoder.body._blocks[-2]._project_conv.weight) not in top_params
    with pytest.raises(ValueError, match="n_top_blocks"):
        encoder.split(encoder.n_blocks + 1)


def test_extract_features_caches_per_encoder_and_input_size(encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("FSL_CACHE_DIR", str(tmp_path))
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    first = extract_features(encoder, images, batch_size=2, cache_key="t", progress=False)
    assert first.shape == (5, 1280) and first.dtype == torch.float32
    with torch.no_grad():
        assert torch.allclose(first, encoder(images.float() / 255), atol=1e-4)  # batch size changes rounding only
    assert len(list(tmp_path.glob("features-t-*.pt"))) == 1
    assert torch.equal(extract_features(encoder, images, cache_key="t", progress=False), first)
    encoder.input_size = 48  # a different input size must not reuse the cached features
    try:
        other = extract_features(encoder, images, cache_key="t", progress=False)
    finally:
        encoder.input_size = 64
    assert len(list(tmp_path.glob("features-t-*.pt"))) == 2
    assert not torch.allclose(other, first, atol=1e-3)
