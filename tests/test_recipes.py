"""fsl_utils.training.recipes: every training recipe runs a few steps on real data, changes the weights and
returns a working few-shot classifier (the lectures measure how well they learn)."""

from __future__ import annotations

import pytest
import torch

from fsl_utils.encoders import Conv4
from fsl_utils.data import EpisodeSampler
from fsl_utils.methods import MatchingNetworks, PrototypicalNetworks, SiameseClassifier
from fsl_utils.methods.maml import MAMLClassifier
from fsl_utils.methods.baseline import BaselineFinetune, CosineClassifier
from fsl_utils.training.recipes import pretrain_ssl, train_baseline, train_clip_heads, train_maml, train_matching, train_protonet, train_siamese


@pytest.fixture(scope="module")
def small_omniglot(omniglot_background):
    return omniglot_background.subset(list(range(40)))


def _answers(method, data, n_way=5):
    ep = next(iter(EpisodeSampler(data, n_way, 2, 3, generator=torch.Generator().manual_seed(0))))
    with torch.set_grad_enabled(method.needs_grad_at_test):
        method.process_support_set(ep.support_x, ep.support_y)
        logits = method(ep.query_x)
    assert logits.shape == (15, n_way) and torch.isfinite(logits).all()


def _changed(make, train):
    torch.manual_seed(0)
    before = [p.detach().clone() for p in make().parameters()]
    torch.manual_seed(0)
    module = make()
    method = train(module)
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters())), "training did not change the weights"
    return method


@pytest.mark.parametrize("recipe, cls", [(train_protonet, PrototypicalNetworks), (train_matching, MatchingNetworks)])
def test_episodic_recipes(small_omniglot, recipe, cls):
    method = _changed(lambda: Conv4(hidden=8), lambda b: recipe(small_omniglot, b, steps=2, n_way=5, progress=False))
    assert isinstance(method, cls) and not method.training
    _answers(method, small_omniglot)


@pytest.mark.parametrize("cosine", [False, True])
def test_baseline_recipe(small_omniglot, cosine):
    method = _changed(Conv4, lambda m: train_baseline(small_omniglot, m, 64, steps=3, cosine=cosine, batch_size=16, progress=False))
    assert isinstance(method, BaselineFinetune) and method.cosine == cosine and not method.backbone.training
    _answers(method, small_omniglot)
    assert isinstance(method.head, CosineClassifier) == cosine


def test_siamese_recipe(small_omniglot):
    method = _changed(lambda: Conv4(hidden=8), lambda e: train_siamese(small_omniglot, e, 8, steps=2, n_classes=4, progress=False))
    assert isinstance(method, SiameseClassifier)
    _answers(method, small_omniglot)
    with pytest.raises(ValueError, match="per_class must be >= 2"):
        train_siamese(small_omniglot, Conv4(hidden=8), 8, steps=1, per_class=1)


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_recipe(small_omniglot, first_order):
    method = train_maml(small_omniglot, steps=2, first_order=first_order, hidden=8, meta_batch=2, progress=False)
    assert isinstance(method, MAMLClassifier) and method.maml.first_order == first_order
    _answers(method, small_omniglot)


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_ssl_recipe(cifar_train, method):
    images = cifar_train.images[:64]
    torch.manual_seed(0)
    encoder = pretrain_ssl(images, method, steps=2, batch_size=16, progress=False)
    assert not encoder.training
    with torch.no_grad():
        z = encoder(images[:4].float() / 255)
    assert z.shape == (4, 128) and torch.isfinite(z).all()
    from fsl_utils.encoders import CifarCNN

    torch.manual_seed(0)
    assert not torch.equal(CifarCNN(0).encoder[1].weight, encoder.encoder[1].weight)
    with pytest.raises(ValueError, match="'simclr' or 'byol'"):
        pretrain_ssl(images, "moco", steps=1)


def test_clip_heads_recipe_learns_to_pair_images_with_their_class_text():
    g = torch.Generator().manual_seed(0)
    text = torch.randn(3, 2, 12, generator=g)  # 3 classes, 2 templates
    centres = torch.randn(3, 20, generator=g)
    labels = torch.arange(3).repeat_interleave(30)
    images = centres[labels] + 0.1 * torch.randn(90, 20, generator=g)
    heads = train_clip_heads(images, labels, text, epochs=30, batch_size=16, embed_dim=8, lr=1e-2, progress=False)
    with torch.no_grad():
        weights = heads.embed_texts(text.mean(1))
        pred = (heads.embed_images(images) @ weights.T).argmax(1)
    assert (pred == labels).float().mean() > 0.9
    with pytest.raises(ValueError, match="90 image features but 3 labels"):
        train_clip_heads(images, labels[:3], text, epochs=1)
