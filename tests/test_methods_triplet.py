"""The triplet loss (FaceNet) against naive numpy loops over the paper's equation, and the
verification helpers (ROC, threshold) against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fsl_utils.methods.triplet import pairwise_distances, triplet_fractions, triplet_loss
from fsl_utils.evaluation.verification import accuracy_at, auc, best_threshold, roc_curve


def _batch(seed=0, n_classes=4, per_class=3, dim=5):
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(n_classes * per_class, dim, generator=g, dtype=torch.float64), dim=1)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    return z, y


def _oracle(z: np.ndarray, y: np.ndarray, margin: float, mining: str, squared: bool) -> float:
    """Loops over anchors, positives and negatives: [d(a,p) - d(a,n) + margin]_+ per the paper."""
    n = len(y)

    def d(i, j):
        s = float(((z[i] - z[j]) ** 2).sum())
        return s if squared else s ** 0.5

    terms = []
    if mining == "hard":  # Hermans et al.: per anchor, the farthest positive and the closest negative
        for a in range(n):
            pos = [d(a, p) for p in range(n) if p != a and y[p] == y[a]]
            neg = [d(a, k) for k in range(n) if y[k] != y[a]]
            if pos and neg:
                terms.append(max(0.0, max(pos) - min(neg) + margin))
        return float(np.mean(terms))
    for a in range(n):
        for p in range(n):
            if p == a or y[p] != y[a]:
                continue
            negatives = [k for k in range(n) if y[k] != y[a]]
            if mining == "all":
                terms += [max(0.0, d(a, p) - d(a, k) + margin) for k in negatives]
            else:  # semi-hard: the closest negative farther than the positive, else the farthest
                farther = [d(a, k) for k in negatives if d(a, k) > d(a, p)]
                chosen = min(farther) if farther else max(d(a, k) for k in negatives)
                terms.append(max(0.0, d(a, p) - chosen + margin))
    return float(np.mean(terms))


@pytest.mark.parametrize("mining", ["all", "semi_hard", "hard"])
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("margin", [0.2, 1.0])
def test_triplet_loss_matches_the_numpy_oracle(mining, squared, margin):
    for seed in range(3):
        z, y = _batch(seed)
        ours = triplet_loss(z, y, margin=margin, mining=mining, squared=squared).item()
        assert ours == pytest.approx(_oracle(z.numpy(), y.numpy(), margin, mining, squared), rel=1e-9, abs=1e-12)


def test_unequal_classes_and_a_singleton_class():
    z, _ = _batch(3, n_classes=1, per_class=9)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])  # class 3 has one example: an anchor without positive
    for mining in ("all", "semi_hard", "hard"):
        assert triplet_loss(z, y, 0.3, mining).item() == pytest.approx(_oracle(z.numpy(), y.numpy(), 0.3, mining, True), rel=1e-9)


def test_gradients_are_finite_and_pull_positives_together():
    z, y = _batch(1)
    z = z.float().requires_grad_(True)
    for mining in ("all", "semi_hard", "hard"):
        for squared in (True, False):
            loss = triplet_loss(z, y, mining=mining, squared=squared)
            (grad,) = torch.autograd.grad(loss, z)
            assert torch.isfinite(grad).all()
    # two well-separated clusters satisfy every margin: zero loss
    y2 = torch.tensor([0, 0, 1, 1])
    separated = torch.tensor([[1.0, 0.0], [0.99, 0.01], [-1.0, 0.0], [-0.99, -0.01]])
    assert triplet_loss(separated, y2, mining="hard").item() == 0.0


def test_pairwise_distances_and_fractions():
    z, y = _batch(2)
    d = pairwise_distances(z)
    assert torch.allclose(d, torch.cdist(z, z) ** 2, atol=1e-12)
    assert torch.allclose(pairwise_distances(z, squared=False), torch.cdist(z, z), atol=1e-7)
    f = triplet_fractions(z, y, margin=0.2)
    assert sum(f.values()) == pytest.approx(1.0) and min(f.values()) >= 0


def test_bad_batches_are_clear_errors():
    z, y = _batch(0)
    with pytest.raises(ValueError, match="mining"):
        triplet_loss(z, y, mining="easy")
    with pytest.raises(ValueError, match="two examples of one class"):
        triplet_loss(z[:4], torch.arange(4))


def test_roc_auc_and_threshold_agree_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    same = (torch.rand(400, generator=g) < 0.5).float()
    scores = same * 1.0 + torch.randn(400, generator=g)
    scores[:50] = scores[:50].round()  # ties
    fpr, tpr, thresholds = roc_curve(scores, same)
    sk_fpr, sk_tpr, _ = metrics.roc_curve(same.numpy(), scores.numpy(), drop_intermediate=False)
    assert np.allclose(fpr.numpy(), sk_fpr) and np.allclose(tpr.numpy(), sk_tpr)
    assert auc(fpr, tpr) == pytest.approx(metrics.roc_auc_score(same.numpy(), scores.numpy()), rel=1e-9)
    threshold, best = best_threshold(scores, same)
    # brute force over every candidate threshold
    brute = max(accuracy_at(scores, same, t) for t in scores.tolist())
    assert best == pytest.approx(brute, abs=1e-4) and accuracy_at(scores, same, threshold) == pytest.approx(best, abs=1e-4)
