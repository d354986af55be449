"""fsl_utils.evaluation.leaderboard: identical episodes across inputs, accuracies against a naive oracle,
cost measurement, tables and plots."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from torch import nn

from fsl_utils.data.containers import ClassImages
from fsl_utils.evaluation.cost import measure, resident_bytes
from fsl_utils.evaluation.leaderboard import Contender, plot_accuracy_vs_shots, run_leaderboard, table_markdown
from fsl_utils.evaluation.leaderboard import episodes as leaderboard_episodes
from fsl_utils.methods import NearestCentroid
from fsl_utils.methods.base import FewShotClassifier


def _toy(n_classes=8, per_class=12, size=6, seed=0):
    """uint8 images (n_classes, per_class, 1, size, size): class mean + noise, so classes overlap a little."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n_classes, 1, 1, size, size, generator=g) * 200
    noise = torch.randn(n_classes, per_class, 1, size, size, generator=g) * 60
    return ClassImages((means + noise).clamp(0, 255).to(torch.uint8), [f"c{i}" for i in range(n_classes)])


class _Flatten(nn.Module):
    def forward(self, x):
        return x.flatten(1)


def test_images_and_their_features_give_identical_episodes():
    data = _toy()
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(36, 5))
    with torch.no_grad():
        feats = encoder(data.as_float().flatten(0, 1)).view(8, 12, 5)
        for k in (1, 3):
            a = list(leaderboard_episodes(data, 4, k, 2, n_episodes=3, seed=7))
            b = list(leaderboard_episodes(feats, 4, k, 2, n_episodes=3, seed=7))
            for ea, eb in zip(a, b):
                assert torch.equal(ea.class_ids, eb.class_ids)
                assert torch.allclose(encoder(ea.support_x), eb.support_x, atol=1e-6)
                assert torch.allclose(encoder(ea.query_x), eb.query_x, atol=1e-6)


def _oracle_nearest_mean(data, n_way, k, n_query, n_episodes, seed):
    """Per-episode accuracy of nearest class mean on raw pixels, in numpy, from the same episodes."""
    accs = []
    for ep in leaderboard_episodes(data, n_way, k, n_query, n_episodes, seed):
        s, q = ep.support_x.flatten(1).numpy().astype(np.float64), ep.query_x.flatten(1).numpy().astype(np.float64)
        sy, qy = ep.support_y.numpy(), ep.query_y.numpy()
        means = np.stack([s[sy == c].mean(0) for c in range(n_way)])
        pred = [int(np.argmin([((x - m) ** 2).sum() for m in means])) for x in q]
        accs.append(100 * np.mean(np.array(pred) == qy))
    mean = float(np.mean(accs))
    return mean, 1.96 * float(np.std(accs, ddof=1)) / math.sqrt(len(accs)), accs


def test_accuracies_match_a_naive_oracle_on_the_same_episodes():
    data = _toy()
    built = []

    def build():
        built.append(1)
        return NearestCentroid(_Flatten(), normalize=False)

    rows = run_leaderboard([Contender("centroid", build, family="frozen")], {"images": data}, "toy",
                           shots=(1, 4), n_way=4, n_query=3, n_episodes=20, seed=3, progress=False)
    assert built == [1]  # built once, evaluated at every k
    assert [(r.method, r.dataset, r.family, r.k_shot, r.n_episodes) for r in rows] == [("centroid", "toy", "frozen", 1, 20), ("centroid", "toy", "frozen", 4, 20)]
    for r in rows:
        mean, ci, accs = _oracle_nearest_mean(data, 4, r.k_shot, 3, 20, seed=3 + r.k_shot)
        assert r.mean == pytest.approx(mean, abs=1e-4) and r.ci95 == pytest.approx(ci, abs=1e-4)
        assert np.allclose(r.accuracies, accs, atol=1e-4)  # episode i is the same episode
    assert rows[1].mean > rows[0].mean  # more shots help on this data
    assert 25 < rows[0].mean < 100  # neither chance nor trivial: the oracle comparison means something


class _NamedClasses(FewShotClassifier):
    """Predicts from the class ids it was told (like zero-shot); the support set is ignored."""

    def __init__(self, class_of_item):
        super().__init__()
        self.class_of_item = class_of_item  # feature value -> dataset class
        self.class_ids = None

    def select_classes(self, class_ids):
        self.class_ids = class_ids

    def process_support_set(self, support_x, support_y):
        pass

    def forward(self, query_x):
        true_class = query_x[:, 0].long()
        return (true_class[:, None] == self.class_ids[None, :]).float()


def test_methods_with_select_classes_are_told_each_episodes_classes():
    feats = torch.arange(6.0)[:, None, None].expand(6, 5, 1).contiguous()  # feature = dataset class
    rows = run_leaderboard([Contender("names", lambda: _NamedClasses(None), inputs="feats")], {"feats": feats}, "toy",
                           shots=(1, 2), n_way=3, n_query=2, n_episodes=5, progress=False)
    assert [r.mean for r in rows] == [100.0, 100.0]


def test_bad_inputs_are_named():
    data = _toy()
    with pytest.raises(ValueError, match="not in data.*available: \\['images'\\]"):
        run_leaderboard([Contender("x", lambda: None, inputs="imagenet")], {"images": data}, "toy", progress=False)
    with pytest.raises(ValueError, match="same classes and examples"):
        run_leaderboard([], {"images": data, "feats": torch.zeros(8, 11, 3)}, "toy", progress=False)


class _Clocks:
    """Stand-in for the ``time`` module of fsl_utils.evaluation.cost: each clock returns its values in turn."""

    def __init__(self, perf_counter, process_time):
        self._wall, self._cpu = iter(perf_counter), iter(process_time)

    def perf_counter(self):
        return next(self._wall)

    def process_time(self):
        return next(self._cpu)


class _WatchedResidentMemory:
    """``resident_bytes`` of fsl_utils.evaluation.cost, watched: ``grown`` is set once a reading is at least
    ``threshold`` bytes above the first one (the baseline ``measure`` takes on entering)."""

    def __init__(self, threshold):
        self.threshold, self.first, self.grown = threshold, None, threading.Event()

    def __call__(self):
        now = resident_bytes()
        if self.first is None:
            self.first = now
        elif now is not None and now - self.first >= self.threshold:
            self.grown.set()
        return now


def test_measure_sees_time_cpu_and_memory(monkeypatch):
    import fsl_utils.evaluation.cost

    # wall time from the wall clock, CPU time from the process's CPU clock (0.2 s waited, 0.01 s computed)
    monkeypatch.setattr(fsl_utils.evaluation.cost, "time", _Clocks(perf_counter=[100.0, 100.2], process_time=[5.0, 5.01]))
    with measure() as idle:
        pass
    assert idle.cost.wall_seconds == pytest.approx(0.2) and idle.cost.cpu_seconds == pytest.approx(0.01), idle.cost
    monkeypatch.undo()

    watched = _WatchedResidentMemory(threshold=150 * 2**20)
    monkeypatch.setattr(fsl_utils.evaluation.cost, "resident_bytes", watched)
    with measure() as busy:
        big = torch.ones(200 * 2**20 // 4)  # 200 MiB, touched
        # the sampler thread must see it before it is freed: wait for its reading, not for a duration
        assert watched.grown.wait(timeout=120), "the memory sampler never saw the 200 MiB allocation"
        total = float(big.sum())
        del big
    assert total == 200 * 2**20 // 4
    assert busy.cost.peak_mb > 150, busy.cost
    with measure() as idle:
        pass
    assert idle.cost.peak_mb < 50, idle.cost


def test_table_and_plot():
    import matplotlib.pyplot as plt

    data = _toy()
    rows = run_leaderboard([Contender("centroid", lambda: NearestCentroid(_Flatten())),
                            Contender("cosine centroid", lambda: NearestCentroid(_Flatten(), distance="cosine"))],
                           {"images": data}, "toy", shots=(1, 4), n_way=4, n_query=3, n_episodes=5, progress=False)
    table = table_markdown(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| dataset | method | 1-shot (%) | 4-shot (%) | train wall (s)")
    assert len(lines) == 4 and lines[2].startswith("| toy | centroid | ") and f"{rows[0].mean:.1f} ± {rows[0].ci95:.1f}" in lines[2]
    ax = plot_accuracy_vs_shots(rows, title="toy", chance=25)
    assert len(ax.get_legend().get_texts()) == 3 and ax.get_title() == "toy"
    plt.close(ax.figure)


def test_precomputed_embeddings_give_the_same_accuracies_as_images():
    from fsl_utils.encoders import Conv4
    from fsl_utils.methods import PrototypicalNetworks

    data = _toy(n_classes=6, per_class=8, size=8)
    torch.manual_seed(0)
    backbone = Conv4(1, hidden=8, n_blocks=2)
    backbone(torch.rand(16, 1, 8, 8))  # non-trivial BatchNorm running statistics
    kwargs = dict(shots=(1, 3), n_way=3, n_query=2, n_episodes=6, seed=1, progress=False)
    on_images = run_leaderboard([Contender("p", lambda: PrototypicalNetworks(backbone))], {"images": data}, "toy", **kwargs)
    built = []
    precomputed = run_leaderboard([Contender("p", lambda: built.append(PrototypicalNetworks(backbone)) or built[-1], encoder="backbone")],
                                  {"images": data}, "toy", **kwargs)
    assert isinstance(built[0].backbone, nn.Identity)
    for a, b in zip(on_images, precomputed):
        assert torch.allclose(torch.tensor(a.mean), torch.tensor(b.mean)) and a.k_shot == b.k_shot
    with pytest.raises(ValueError, match="no module at 'network.encoder'"):
        run_leaderboard([Contender("p", lambda: PrototypicalNetworks(backbone), encoder="network.encoder")], {"images": data}, "toy", **kwargs)
