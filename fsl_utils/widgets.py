"""An ipywidgets labelling UI for relevance feedback (the people's side of
:class:`fsl_utils.retrieval.RelevanceFeedback`).

The widget shows the query and a grid of the best-ranked pool images, each with a
thumbs-up and a thumbs-down button; "retrain & re-rank" fits the linear probe on the
marks so far and refills the grid with the new ranking. When the ground truth is known
(a labelled demo set) the status line also shows precision@k.

Example:
    >>> ui = RelevanceFeedbackWidget(images, embeddings, query=17, relevant=truth)
    >>> ui  # displays the grid in a notebook
"""

from __future__ import annotations

import io

import ipywidgets as w
import numpy as np
import torch
from PIL import Image

from .retrieval import RelevanceFeedback, precision_at_k


def to_png(image: torch.Tensor, size: int = 64) -> bytes:
    """One image as PNG bytes, resized to ``size`` pixels (nearest neighbour).

    Args:
        image: uint8 or float [0, 1] tensor of shape (C, H, W) or (H, W), C in {1, 3}.
        size: side of the thumbnail.
    """
    x = image.detach().cpu()
    if x.is_floating_point():
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    if x.ndim == 3:
        x = x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)
    elif x.ndim != 2:
        raise ValueError(f"an image must have shape (C, H, W) or (H, W), got {tuple(image.shape)}")
    pil = Image.fromarray(np.ascontiguousarray(x.numpy())).resize((size, size), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


class Tile:
    """One grid cell: a pool image, its position in the pool, and the two mark buttons."""

    def __init__(self, thumb_size: int) -> None:
        self.index = -1
        self.image = w.Image(format="png", width=thumb_size, height=thumb_size)
        self.caption = w.Label("").add_class("fsl-caption")
        half = w.Layout(width=f"{thumb_size // 2}px", padding="0px")
        # Font Awesome icons ship with JupyterLab; emoji would need a colour font
        self.up = w.Button(icon="thumbs-up", tooltip="relevant", layout=half).add_class("fsl-up")
        self.down = w.Button(icon="thumbs-down", tooltip="not relevant", layout=half).add_class("fsl-down")
        buttons = w.HBox([self.up, self.down], layout=w.Layout(width=f"{thumb_size}px"))
        self.box = w.VBox([self.image, self.caption, buttons], layout=w.Layout(margin="0 6px 6px 0")).add_class("fsl-tile")

    def show(self, index: int, png: bytes, mark: bool | None) -> None:
        self.index = index
        self.image.value = png
        self.caption.value = f"#{index}"
        self.paint(mark)

    def paint(self, mark: bool | None) -> None:
        """Colour the buttons after the item's mark (green: relevant, red: not relevant)."""
        self.up.button_style = "success" if mark is True else ""
        self.down.button_style = "danger" if mark is False else ""


class RelevanceFeedbackWidget:
    """A clickable relevance-feedback loop over an image pool.

    Click thumbs up / thumbs down on the results (a second click on the same button
    removes the mark), then "retrain & re-rank". Marked items leave the grid after a
    re-rank (``hide_labeled``), so every round shows new candidates.

    Args:
        images: the pool's images, uint8 or float [0, 1], shape (n, C, H, W) or (n, H, W).
        embeddings: the pool's embeddings, shape (n, d).
        query: pool position of the query image.
        relevant: optional ground-truth bool mask of shape (n,); enables the
            precision@k readout.
        n_show: results shown in the grid.
        columns: tiles per row.
        k: precision cut-off.
        C: the logistic regression's inverse regularisation strength.
        hide_labeled: leave marked items out of the grid after a re-rank.
        thumb_size: thumbnail side in pixels.

    Attributes:
        feedback: the underlying :class:`~fsl_utils.retrieval.RelevanceFeedback`.
        tiles: the grid's :class:`Tile` objects, best-ranked first.
        retrain_button: the "retrain & re-rank" button.
        status: the label with the mark counts (and precision@k).
        widget: the root container (what a notebook displays).
    """

    def __init__(
        self,
        images: torch.Tensor,
        embeddings: torch.Tensor,
        query: int,
        relevant: torch.Tensor | None = None,
        n_show: int = 24,
        columns: int = 6,
        k: int = 50,
        C: float = 1.0,
        hide_labeled: bool = True,
        thumb_size: int = 80,
    ) -> None:
        if len(images) != len(embeddings):
            raise ValueError(f"{len(images)} images but {len(embeddings)} embeddings; they must describe the same pool")
        if relevant is not None and (relevant.dtype != torch.bool or relevant.shape != (len(images),)):
            raise ValueError(f"relevant must be a bool mask of shape ({len(images)},), got {relevant.dtype} {tuple(relevant.shape)}")
        if n_show < 1 or columns < 1:
            raise ValueError("n_show and columns must be positive")
        self.images, self.relevant, self.k, self.hide_labeled, self.thumb_size = images, relevant, k, hide_labeled, thumb_size
        self.feedback = RelevanceFeedback(embeddings, query, C=C)
        self.rounds = 0
        self.tiles = [Tile(thumb_size) for _ in range(min(n_show, len(images) - 1))]
        for tile in self.tiles:
            tile.up.on_click(lambda _, t=tile: self.toggle(t, True))
            tile.down.on_click(lambda _, t=tile: self.toggle(t, False))
        self.retrain_button = w.Button(description="retrain & re-rank", button_style="primary", icon="refresh").add_class("fsl-retrain")
        self.retrain_button.on_click(lambda _: self.retrain())
        self.status = w.HTML("").add_class("fsl-status")
        rows = [w.HBox([t.box for t in self.tiles[i : i + columns]]) for i in range(0, len(self.tiles), columns)]
        query_box = w.VBox([w.HTML("<b>query</b>"), w.Image(value=to_png(images[query], thumb_size), format="png")])
        self.widget = w.VBox([w.HBox([query_box, w.VBox([self.retrain_button, self.status])]), *rows]).add_class("fsl-relevance")
        self.refresh()

    def shown(self) -> list[int]:
        """Pool positions currently in the grid, best-ranked first."""
        return [t.index for t in self.tiles]

    def toggle(self, tile: Tile, relevant: bool) -> None:
        """A click on a tile's button: set that mark, or clear it if it was already set."""
        current = self.feedback.labels.get(tile.index)
        self.feedback.mark(tile.index, None if current is relevant else relevant)
        tile.paint(self.feedback.labels.get(tile.index))
        self.update_status()

    def retrain(self) -> None:
        """Fit the probe on all marks, re-rank the pool and refill the grid.

        The grid is refilled tile by tile (one widget message each), so the button stays
        disabled and the status line says "re-ranking" until every tile shows the new
        ranking; the status line's "round N" and the re-enabled button are the completion
        signal (a person, or a browser test, reading the grid earlier sees a mix of the
        old and the new ranking).
        """
        self.retrain_button.disabled = True
        self.status.value = "re-ranking&hellip;"
        try:
            self.feedback.retrain()
            self.rounds += 1
            self.refresh()
        except Exception:
            self.update_status()  # not "re-ranking" forever
            raise
        finally:
            self.retrain_button.disabled = False

    def refresh(self) -> None:
        """Fill the grid from the current ranking."""
        ranking = self.feedback.ranking(exclude_labeled=self.hide_labeled and self.rounds > 0)
        for tile, index in zip(self.tiles, ranking.tolist()):
            tile.show(index, to_png(self.images[index], self.thumb_size), self.feedback.labels.get(index))
        self.update_status()

    def precision(self, exclude_labeled: bool = True) -> float | None:
        """precision@k of the current ranking by the ground truth (None without it)."""
        if self.relevant is None:
            return None
        ranking = self.feedback.ranking(exclude_labeled=exclude_labeled)
        return precision_at_k(ranking, self.relevant, min(self.k, len(ranking)))

    def update_status(self) -> None:
        fb = self.feedback
        text = f"round {self.rounds} &middot; marked {fb.n_relevant} relevant, {fb.n_irrelevant} not relevant"
        if self.relevant is not None:
            text += (
                f"<br>precision@{self.k}: <b>{self.precision(exclude_labeled=True):.2f}</b> among unmarked items, "
                f"{self.precision(exclude_labeled=False):.2f} overall"
            )
        self.status.value = text

    def _repr_mimebundle_(self, **kwargs):  # displaying the object displays the widget
        return self.widget._repr_mimebundle_(**kwargs)
