from __future__ import annotations

import pytest
import torch

from fsl_utils import seed_everything
from fsl_utils.data import ClassImages, Episode, EpisodeSampler


def fake_classes(n_classes=12, per_class=20, size=6) -> ClassImages:
    """Each image is filled with a value that encodes (class, example) so tests can decode it."""
    codes = torch.arange(n_classes * per_class, dtype=torch.int64).view(n_classes, per_class)
    images = codes[:, :, None, None].expand(n_classes, per_class, size, size).to(torch.uint8)
    return ClassImages(images, [f"c{i}" for i in range(n_classes)])


def decode(x: torch.Tensor) -> torch.Tensor:
    """Back from float images to the (class * per_class + example) code."""
    return (x[:, 0, 0, 0] * 255).round().long()


@pytest.mark.parametrize("n,k,q", [(5, 1, 15), (5, 5, 5), (12, 1, 1), (3, 10, 10), (1, 19, 1)])
def test_episode_invariants(n, k, q):
    data = fake_classes()
    ep = EpisodeSampler(data, n, k, q, generator=torch.Generator().manual_seed(0)).sample()
    assert isinstance(ep, Episode)
    assert ep.support_x.shape == (n * k, 1, 6, 6) and ep.query_x.shape == (n * q, 1, 6, 6)
    assert ep.support_x.dtype == torch.float32 and 0 <= ep.support_x.min() and ep.support_x.max() <= 1
    assert (ep.n_way, ep.k_shot, ep.n_query) == (n, k, q)
    # labels remapped 0..n-1, class-major, K and Q per class
    assert torch.equal(ep.support_y, torch.arange(n).repeat_interleave(k))
    assert torch.equal(ep.query_y, torch.arange(n).repeat_interleave(q))
    assert len(set(ep.class_ids.tolist())) == n
    s, qq = decode(ep.support_x), decode(ep.query_x)
    # every image belongs to the dataset class its label points to
    assert torch.equal(s // 20, ep.class_ids[ep.support_y])
    assert torch.equal(qq // 20, ep.class_ids[ep.query_y])
    # support and query are disjoint, and no example repeats
    assert len(set(s.tolist()) | set(qq.tolist())) == n * (k + q)


def test_same_seed_same_episodes_different_seed_different():
    data = fake_classes()

    def stream(seed):
        return list(EpisodeSampler(data, 5, 1, 3, n_episodes=4, generator=seed_everything(seed)))

    a, b, c = stream(7), stream(7), stream(8)
    assert len(a) == 4
    assert all(torch.equal(x.support_x, y.support_x) and torch.equal(x.class_ids, y.class_ids) for x, y in zip(a, b))
    assert any(not torch.equal(x.class_ids, y.class_ids) for x, y in zip(a, c))


def test_sampler_does_not_use_global_random_state():
    data = fake_classes()
    s1 = EpisodeSampler(data, 5, 1, 3, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    e1 = s1.sample()
    s2 = EpisodeSampler(data, 5, 1, 3, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(999)
    torch.rand(10)
    assert torch.equal(e1.support_x, s2.sample().support_x)


def test_classes_are_covered_uniformly():
    data = fake_classes(n_classes=10)
    sampler = EpisodeSampler(data, 5, 1, 1, n_episodes=2000, generator=torch.Generator().manual_seed(0))
    counts = torch.zeros(10)
    for ep in sampler:
        counts[ep.class_ids] += 1
    assert counts.sum() == 10000
    assert (counts - 1000).abs().max() < 100  # ~5 sigma of Binomial(2000, 0.5)


def test_transform_device_and_float_features():
    feats = torch.randn(8, 6, 16)  # precomputed features pass through unchanged
    ep = EpisodeSampler(feats, 4, 2, 3, transform=lambda x: x * 2, device="cpu").sample()
    assert ep.support_x.shape == (8, 16) and ep.support_x.dtype == torch.float32
    rows = [((feats * 2).flatten(0, 1) == r).all(dim=1).any() for r in ep.support_x]
    assert all(rows)
    assert ep.to("cpu").support_x.device.type == "cpu"


def test_colour_images_keep_their_channels():
    data = torch.randint(0, 255, (6, 10, 3, 8, 8), dtype=torch.uint8)
    ep = EpisodeSampler(data, 3, 2, 2).sample()
    assert ep.support_x.shape == (6, 3, 8, 8)


@pytest.mark.parametrize(
    "n,k,q,match",
    [
        (13, 1, 1, "n_way=13 but the data has only 12 classes"),
        (5, 15, 6, "exceeds the 20 examples per class"),
        (0, 1, 1, "n_way must be a positive integer"),
        (5, -1, 1, "k_shot must be a positive integer"),
        (5, 1, 0, "n_query must be a positive integer"),
        (5, 1.5, 1, "k_shot must be a positive integer"),
        (True, 1, 1, "n_way must be a positive integer"),
    ],
)
def test_impossible_requests_fail_at_construction(n, k, q, match):
    with pytest.raises(ValueError, match=match):
        EpisodeSampler(fake_classes(), n, k, q)


def test_bad_n_episodes_and_bad_data():
    with pytest.raises(ValueError, match="n_episodes"):
        EpisodeSampler(fake_classes(), 5, 1, 1, n_episodes=0)
    with pytest.raises(ValueError, match="n_classes, n_per_class"):
        EpisodeSampler(torch.zeros(5, 5), 2, 1, 1)
    with pytest.raises(TypeError, match="endless"):
        len(EpisodeSampler(fake_classes(), 5, 1, 1))


@pytest.mark.parametrize("k,q", [(1, 1), (2, 3)])
def test_aligned_episodes_share_example_positions_across_classes(k, q):
    data = fake_classes()
    sampler = EpisodeSampler(data, 5, k, q, n_episodes=30, generator=torch.Generator().manual_seed(0), aligned=True)
    seen = set()
    for ep in sampler:
        s, qq = decode(ep.support_x).view(5, k) % 20, decode(ep.query_x).view(5, q) % 20
        # every class of the episode uses the same example positions (for Omniglot: the same drawers)
        assert (s == s[0]).all() and (qq == qq[0]).all()
        assert not set(s[0].tolist()) & set(qq[0].tolist())  # support and query positions differ
        assert torch.equal(decode(ep.support_x) // 20, ep.class_ids[ep.support_y])  # still the labelled classes
        seen.add(tuple(s[0].tolist()))
    assert len(seen) > 5  # the positions vary between episodes
    # the default keeps independent positions per class
    plain = EpisodeSampler(data, 5, 1, 1, n_episodes=30, generator=torch.Generator().manual_seed(0))
    assert any(len(set((decode(ep.support_x) % 20).tolist())) > 1 for ep in plain)


def test_omniglot_example_position_is_the_drawer():
    """``aligned=True`` gives Lake's runs only if position j of every character is drawer j."""
    from fsl_utils.data import data_root

    folder = data_root() / "omniglot-py" / "images_evaluation"
    characters = sorted(c for a in folder.iterdir() if a.is_dir() for c in a.iterdir() if c.is_dir())
    assert len(characters) == 659
    for character in characters:  # the loader reads each folder's files in sorted order
        drawers = [f.stem.split("_")[1] for f in sorted(character.glob("*.png"))]
        assert drawers == [f"{j:02d}" for j in range(1, 21)], character


def test_real_omniglot_episodes_are_disjoint(omniglot_evaluation):
    sampler = EpisodeSampler(omniglot_evaluation, 20, 5, 15, n_episodes=50, generator=torch.Generator().manual_seed(0))
    for ep in sampler:
        assert ep.support_x.shape == (100, 1, 28, 28)
        # no query image is pixel-identical to a support image of the episode
        same = (ep.query_x.flatten(1)[:, None] == ep.support_x.flatten(1)[None]).all(-1)
        assert not same.any()
