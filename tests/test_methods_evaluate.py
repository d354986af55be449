"""Evaluation extras: transductive BatchNorm, and evaluation on precomputed embeddings."""

from __future__ import annotations

import torch
from torch import nn

from fsl_utils.encoders import Conv4
from fsl_utils.data import ClassImages, EpisodeSampler
from fsl_utils.evaluation import batchnorm_batch_statistics, embed_classes, evaluate
from fsl_utils.methods import MatchingNetworks, PrototypicalNetworks
from seeds import rng


def test_batch_statistics_mode_normalises_with_the_batch_and_restores_the_model():
    bn = nn.BatchNorm1d(3).eval()
    bn.running_mean.fill_(5.0)  # stale statistics, far from the data
    x = torch.randn(16, 3, generator=rng(0))
    state = {k: v.clone() for k, v in bn.state_dict().items()}
    with batchnorm_batch_statistics(bn):
        out = bn(x)
    manual = (x - x.mean(0)) / (x.var(0, unbiased=False) + bn.eps).sqrt()
    assert torch.allclose(out, manual, atol=1e-5)
    assert not bn.training and all(torch.equal(v, bn.state_dict()[k]) for k, v in state.items())
    assert not torch.allclose(bn(x), manual, atol=1e-2)  # running statistics again


def test_transductive_evaluation_differs_and_leaves_running_stats_alone():
    torch.manual_seed(0)
    backbone = Conv4(hidden=8)
    for m in backbone.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.fill_(0.5)
            m.running_var.fill_(4.0)
    method = PrototypicalNetworks(backbone)
    data = torch.rand(12, 6, 1, 28, 28, generator=rng(1))
    before = {k: v.clone() for k, v in backbone.state_dict().items()}

    def run(transductive):
        sampler = EpisodeSampler(data, 5, 1, 5, n_episodes=10, generator=rng(2))
        return evaluate(method, sampler, progress=False, transductive_bn=transductive).accuracies

    a, b = run(False), run(True)
    assert not torch.equal(a, b)  # the protocol changes the predictions
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in before.items())
    assert method.training  # evaluate restores the mode it found


def test_embed_classes_shape_and_identical_episodes_on_features():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (8, 5, 28, 28), dtype=torch.uint8, generator=rng(3))
    encoder = Conv4(hidden=8).train()
    feats = embed_classes(encoder, ClassImages(images, [str(i) for i in range(8)]), batch_size=7, progress=False)
    assert feats.shape == (8, 5, 8) and feats.dtype == torch.float32 and encoder.training
    with torch.no_grad():
        encoder.eval()
        direct = encoder(images.flatten(0, 1).float().div(255).unsqueeze(1)).view(8, 5, 8)
        encoder.train()
    assert torch.allclose(feats, direct, atol=1e-5)
    # the same seed draws the same episode from images and from their features ...
    ep_img = EpisodeSampler(images, 4, 2, 3, generator=rng(4)).sample()
    ep_feat = EpisodeSampler(feats, 4, 2, 3, generator=rng(4)).sample()
    assert torch.equal(ep_img.class_ids, ep_feat.class_ids)
    # ... so a method on features answers exactly like the method on images (eval mode)
    on_images = MatchingNetworks(encoder).eval()
    on_feats = MatchingNetworks(nn.Identity())
    with torch.no_grad():
        on_images.process_support_set(ep_img.support_x, ep_img.support_y)
        on_feats.process_support_set(ep_feat.support_x, ep_feat.support_y)
        assert torch.allclose(on_images(ep_img.query_x), on_feats(ep_feat.query_x), atol=1e-5)
