"""Figures shared by the lectures. Every function draws on ``ax`` (or a new one) and
returns the Axes; none of them touches matplotlib's global rcParams."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

from .data.containers import to_float
from .data.episodes import Episode


def _as_hwc(images: torch.Tensor) -> np.ndarray:
    """(n, C, H, W) or (n, H, W) float/uint8 -> (n, H, W, C) float in [0, 1]."""
    x = images.detach().cpu()
    x = to_float(x) if x.dtype == torch.uint8 else x
    if x.ndim == 3:
        x = x.unsqueeze(1)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:  # normalised inputs: rescale for display only
        x = (x - lo) / max(hi - lo, 1e-8)
    return x.permute(0, 2, 3, 1).numpy()


def image_grid(images: torch.Tensor, n_rows: int, pad: int = 2, gaps: Sequence[int] = ()) -> np.ndarray:
    """Tile images of shape (n_rows * n_cols, C, H, W) row by row into one (H', W', C) array.

    Args:
        images: the tiles in row-major order.
        n_rows: number of rows; ``len(images)`` must be a multiple of it.
        pad: pixels between tiles.
        gaps: column indices before which a wider gap is drawn (e.g. support | query).
    """
    x = _as_hwc(images)
    n, h, w, c = x.shape
    if n % n_rows:
        raise ValueError(f"{n} images cannot fill {n_rows} rows evenly")
    n_cols = n // n_rows
    col_x, cursor = [], 0
    for j in range(n_cols):
        cursor += 3 * pad if j in gaps and j > 0 else 0
        col_x.append(cursor)
        cursor += w + pad
    width = cursor - pad
    grid = np.ones((n_rows * (h + pad) - pad, width, c))
    for i in range(n):
        r, j = divmod(i, n_cols)
        grid[r * (h + pad) : r * (h + pad) + h, col_x[j] : col_x[j] + w] = x[i]
    return grid[..., 0] if c == 1 else grid


def plot_episode(
    episode: Episode,
    class_names: Sequence[str] | None = None,
    max_query: int = 5,
    ax: Axes | None = None,
) -> Axes:
    """Show an episode: one row per class, its K support images, a gap, then queries.

    Args:
        episode: a class-major :class:`~fsl_utils.data.Episode`.
        class_names: names indexed by dataset class id (``episode.class_ids``); default
            the ids themselves.
        max_query: at most this many query images per class are shown.
        ax: where to draw; a new figure if None.

    Returns:
        The Axes.
    """
    n, k = episode.n_way, episode.k_shot
    q = min(max_query, episode.n_query)
    support = episode.support_x.view(n, k, *episode.support_x.shape[1:])
    query = episode.query_x.view(n, episode.n_query, *episode.query_x.shape[1:])[:, :q]
    tiles = torch.cat([support, query], dim=1).flatten(0, 1)
    grid = image_grid(tiles, n_rows=n, gaps=(k,))
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.8 * (k + q), 0.3 + 0.8 * n))
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1)
    h = episode.support_x.shape[-2]
    names = [class_names[c] if class_names is not None else str(c) for c in episode.class_ids.tolist()]
    ax.set_yticks([(h + 2) * r + h / 2 for r in range(n)], [f"{r}: {name}" for r, name in enumerate(names)], fontsize=8)
    ax.set_xticks([])
    ax.set_title(f"{n}-way {k}-shot episode: support (left) | query (right)", fontsize=10)
    return ax


def plot_learning_curves(
    history: Mapping[str, Sequence[float]],
    steps: Mapping[str, Sequence[float]] | Sequence[float] | None = None,
    xlabel: str = "step",
    ylabel: str = "",
    smooth: int = 1,
    ax: Axes | None = None,
) -> Axes:
    """Plot one line per named series (e.g. ``{"train loss": [...], "val loss": [...]}``).

    Args:
        history: series name -> values.
        steps: x values, shared or per series; default 0, 1, 2, ...
        xlabel, ylabel: axis labels.
        smooth: moving-average window applied to each series (1 = raw).
        ax: where to draw; a new figure if None.

    Returns:
        The Axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in history.items():
        y = np.asarray(values, dtype=float)
        if isinstance(steps, Mapping):
            x = np.asarray(steps[name], dtype=float)
        elif steps is not None:
            x = np.asarray(steps, dtype=float)
        else:
            x = np.arange(len(y), dtype=float)
        if smooth > 1 and len(y) >= smooth:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
            x = x[smooth - 1 :]
        ax.plot(x, y, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(history) > 1:
        ax.legend()
    return ax
