from __future__ import annotations

import json

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from fsl_utils.data import EpisodeSampler
from fsl_utils.plotting import image_grid, plot_episode, plot_learning_curves
from fsl_utils.course.results import record_result
from fsl_utils.evaluation import mean_ci95


def test_image_grid_places_tiles_with_gap():
    tiles = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 1, 2, 2) / 10
    grid = image_grid(tiles, n_rows=2, pad=1, gaps=(2,))
    # 3 columns of width 2, pad 1 between, plus an extra 3-pixel gap before column 2
    assert grid.shape == (5, 2 + 1 + 2 + 1 + 3 + 2)
    assert grid[0, 0] == 0.0 and grid[0, 3] == pytest.approx(0.1) and grid[0, 9] == pytest.approx(0.2)
    assert grid[3, 9] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="rows evenly"):
        image_grid(tiles, n_rows=4)


def test_plot_episode_returns_axes_and_keeps_rcparams(omniglot_evaluation):
    before = dict(matplotlib.rcParams)
    ep = EpisodeSampler(omniglot_evaluation, 5, 2, 3, generator=torch.Generator().manual_seed(0)).sample()
    ax = plot_episode(ep, class_names=omniglot_evaluation.class_names)
    assert isinstance(ax, matplotlib.axes.Axes)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0].startswith("0: ") and omniglot_evaluation.class_names[int(ep.class_ids[0])] in labels[0]
    _, ax2 = plt.subplots()
    assert plot_episode(ep, ax=ax2) is ax2
    assert dict(matplotlib.rcParams) == before
    plt.close("all")


def test_plot_learning_curves():
    ax = plot_learning_curves({"train": [3, 2, 1, 0.5], "val": [3, 2.5, 2, 1.9]}, steps=[0, 10, 20, 30], smooth=2)
    assert len(ax.get_lines()) == 2
    assert np.allclose(ax.get_lines()[0].get_xdata(), [10, 20, 30])
    assert np.allclose(ax.get_lines()[0].get_ydata(), [2.5, 1.5, 0.75])
    plt.close("all")


def test_mean_ci95_matches_formula():
    values = [0.9, 1.0, 0.8, 0.95]
    mean, ci = mean_ci95(torch.tensor(values))
    assert mean == pytest.approx(np.mean(values))
    assert ci == pytest.approx(1.96 * np.std(values, ddof=1) / 2)
    assert mean_ci95([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError):
        mean_ci95([])


def test_record_result_replaces_metric(tmp_path, monkeypatch):
    monkeypatch.setenv("FSL_RESULTS_DIR", str(tmp_path))
    record_result("demo", "acc", 50.0, paper=98.8, protocol="FAST")
    record_result("demo", "acc", 60.0, ci95=1.5)
    record_result("demo", "loss", 0.3, unit="")
    entries = json.loads((tmp_path / "demo.json").read_text())
    assert [(e["metric"], e["value"]) for e in entries] == [("acc", 60.0), ("loss", 0.3)]
    assert entries[0]["ci95"] == 1.5
