"""CLIP objective against a numpy oracle of the paper's pseudocode; heads, prompt
ensembling and the zero-shot classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fsl_utils.methods.zeroshot import (
    TEMPLATES,
    CLIPHeads,
    ZeroShotClassifier,
    class_text_features,
    clip_loss,
    prompts,
    zero_shot_weights,
)


def clip_loss_numpy(i_e: np.ndarray, t_e: np.ndarray, t: float) -> float:
    """The CLIP paper's pseudocode, with loops for the two cross-entropies."""
    i_e = i_e / np.linalg.norm(i_e, axis=1, keepdims=True)
    t_e = t_e / np.linalg.norm(t_e, axis=1, keepdims=True)
    logits = i_e @ t_e.T * np.exp(t)
    n = len(logits)
    loss_i = 0.0  # cross_entropy(logits, labels, axis=0): over images, for each text column
    loss_t = 0.0  # axis=1: over texts, for each image row
    for k in range(n):
        col, row = logits[:, k], logits[k, :]
        loss_i += -(col[k] - np.log(np.sum(np.exp(col)))) / n
        loss_t += -(row[k] - np.log(np.sum(np.exp(row)))) / n
    return (loss_i + loss_t) / 2


@pytest.mark.parametrize("n,d,t", [(2, 3, 0.0), (7, 5, np.log(1 / 0.07)), (16, 8, 1.3)])
def test_clip_loss_matches_the_numpy_oracle(n, d, t):
    g = torch.Generator().manual_seed(n)
    i_e, t_e = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    # asymmetric inputs so that swapping the axes would change the loss
    t_e[0] += 3 * i_e[1]
    ours = clip_loss(i_e, t_e, torch.tensor(t, dtype=torch.float64)).item()
    assert ours == pytest.approx(clip_loss_numpy(i_e.numpy(), t_e.numpy(), t), rel=1e-10)


def test_clip_loss_invariances_and_limits():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    base = clip_loss(x, y, 2.0)
    torch.testing.assert_close(clip_loss(3 * x, 0.5 * y, 2.0), base)  # norms do not matter
    torch.testing.assert_close(clip_loss(y, x, 2.0), base)  # symmetric in the two modalities
    perm = torch.randperm(6, generator=g)
    torch.testing.assert_close(clip_loss(x[perm], y[perm], 2.0), base)  # pair order does not matter
    assert clip_loss(torch.eye(6), torch.eye(6), 5.0) < 0.01  # perfect pairs, sharp -> ~0
    torch.testing.assert_close(clip_loss(x, y, -50.0), torch.tensor(np.log(6), dtype=torch.float32), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="same shape"):
        clip_loss(torch.randn(3, 4), torch.randn(4, 4), 1.0)


def test_heads_compute_the_pseudocode():
    torch.manual_seed(0)
    heads = CLIPHeads(10, 6, embed_dim=4, temperature=0.07)
    assert heads.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    img, txt = torch.randn(5, 10), torch.randn(5, 6)
    expected = clip_loss_numpy(
        (img @ heads.image_proj.weight.T).detach().double().numpy(), (txt @ heads.text_proj.weight.T).detach().double().numpy(), np.log(1 / 0.07)
    )
    assert heads.loss(img, txt).item() == pytest.approx(expected, rel=1e-5)
    logits = heads(img, txt)
    assert logits.shape == (5, 5)
    with torch.no_grad():
        heads.logit_scale.fill_(10.0)  # exp(10) is clipped at 100
    assert heads.scale().item() == pytest.approx(100.0)


def test_prompts_and_ensembling():
    assert prompts(["cat"], ["a {}.", "the {}!"]) == [["a cat.", "the cat!"]]
    with pytest.raises(ValueError, match="slot"):
        prompts(["cat"], ["no slot"])
    torch.manual_seed(0)
    heads = CLIPHeads(8, 6, embed_dim=4)
    fake = lambda sentences: torch.stack([torch.randn(6, generator=torch.Generator().manual_seed(len(s) * 31 + ord(s[-3]))) for s in sentences])
    feats = class_text_features(["cat", "dog", "ship"], fake, TEMPLATES[:3])
    assert feats.shape == (3, 3, 6)
    w = zero_shot_weights(heads, feats)
    expected = F.normalize(F.normalize(heads.text_proj(feats), dim=-1).mean(1), dim=-1)
    torch.testing.assert_close(w, expected)
    torch.testing.assert_close(w.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(zero_shot_weights(heads, feats[:, 0]), heads.embed_texts(feats[:, 0]))


def test_zero_shot_classifier_uses_names_not_support_and_follows_class_ids():
    torch.manual_seed(0)
    heads = CLIPHeads(8, 8, embed_dim=8)
    with torch.no_grad():  # identity projections: images match texts directly
        heads.image_proj.weight.copy_(torch.eye(8))
        heads.text_proj.weight.copy_(torch.eye(8))
    text = torch.eye(8)[:4]  # four classes, one "prompt" each
    clf = ZeroShotClassifier(heads, text)
    queries = torch.eye(8)[[2, 0, 3]] + 0.1 * torch.randn(3, 8)
    clf.select_classes([3, 0, 2])  # episode label 0 = class 3, 1 = class 0, 2 = class 2
    support = torch.randn(3, 8)  # irrelevant for pure zero-shot
    clf.process_support_set(support, torch.tensor([0, 1, 2]))
    logits = clf(queries)
    assert logits.shape == (3, 3) and logits.argmax(1).tolist() == [2, 1, 0]
    clf.process_support_set(torch.randn(3, 8), torch.tensor([0, 1, 2]))
    torch.testing.assert_close(clf(queries), logits)
    # with support_weight=1 only the support means count (a nearest-centroid classifier)
    nc = ZeroShotClassifier(heads, text, support_weight=1.0).select_classes([3, 0, 2])
    nc.process_support_set(torch.eye(8)[[5, 6, 7]], torch.tensor([0, 1, 2]))
    assert nc(torch.eye(8)[[7, 5]]).argmax(1).tolist() == [2, 0]
    with pytest.raises(ValueError, match="select_classes"):
        clf.process_support_set(torch.randn(4, 8), torch.arange(4))
    with pytest.raises(ValueError, match="class_ids"):
        clf.select_classes([9])
    with pytest.raises(RuntimeError, match="process_support_set"):
        ZeroShotClassifier(heads, text)(queries)


def test_heads_learn_to_align_and_generalise_to_unseen_classes():
    """Synthetic towers: both modalities are different random linear views of a shared
    5-d class latent. Trained on 6 classes (enough to pin down a 5-d map), the heads
    must classify 4 unseen classes by their 'names' (text features) far above chance."""
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(10, 5, generator=g)
    a, b = torch.randn(5, 40, generator=g), torch.randn(5, 24, generator=g)
    labels = torch.randint(0, 10, (3000,), generator=g)
    images = (latent[labels] + 0.3 * torch.randn(3000, 5, generator=g)) @ a
    names = latent @ b  # one text per class
    seen = labels < 6
    torch.manual_seed(0)
    heads = CLIPHeads(40, 24, embed_dim=16)
    opt = torch.optim.Adam(heads.parameters(), 1e-2)
    xs, ys = images[seen], labels[seen]
    for step in range(300):
        idx = torch.randint(0, len(xs), (6,), generator=g)
        loss = heads.loss(xs[idx], names[ys[idx]])
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf = ZeroShotClassifier(heads, names).select_classes([6, 7, 8, 9])
    unseen = ~seen
    clf.process_support_set(torch.zeros(4, 40), torch.arange(4))
    acc = (clf(images[unseen]).argmax(1) == labels[unseen] - 6).float().mean().item()
    assert acc > 0.75, acc  # chance: 0.25


def test_clip_bench_runs(run_bench):
    r = run_bench("clip.py", "--train-per-class", "4", "--pool-per-class", "2", "--test-per-class", "3",
                  "--image-size", "32", "--epochs", "1", "--seeds", "1", "--draws", "1")
    assert set(r["zero_shot"]) == {"held-out 5-way", "seen 5-way", "all 10-way"}
    assert all(0 <= v["mean"] <= 100 for v in r["zero_shot"].values())
    assert set(r["linear_probe_held_out"]) == {"1", "2"} and len(r["prompts_held_out"]) == 4
