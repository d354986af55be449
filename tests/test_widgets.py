"""The relevance-feedback widget, driven through its widget objects (no browser)."""

from __future__ import annotations

import io

import ipywidgets as w
import pytest
import torch
from PIL import Image

from fsl_utils.retrieval import RelevanceFeedback
from fsl_utils.widgets import RelevanceFeedbackWidget, to_png


def _pool(n: int = 120, d: int = 12, seed: int = 0):
    """Images whose red channel marks the target set, and embeddings in which the target
    differs along one coordinate that similarity search alone under-weights."""
    g = torch.Generator().manual_seed(seed)
    relevant = torch.zeros(n, dtype=torch.bool)
    relevant[torch.randperm(n, generator=g)[: n // 3]] = True
    emb = torch.randn(n, d, generator=g) + 2.0
    emb[relevant, 0] += 3.0
    images = torch.zeros(n, 3, 8, 8, dtype=torch.uint8)
    images[:, 0] = (relevant.to(torch.uint8) * 200)[:, None, None]
    images[:, 2] = 120
    return images, emb, relevant


def test_to_png_round_trips_pixels():
    img = torch.arange(48, dtype=torch.uint8).view(3, 4, 4) * 5
    decoded = torch.from_numpy(__import__("numpy").array(Image.open(io.BytesIO(to_png(img, size=4)))))
    assert torch.equal(decoded.permute(2, 0, 1), img)
    gray = Image.open(io.BytesIO(to_png(torch.rand(1, 5, 5), size=10)))
    assert gray.size == (10, 10) and gray.mode == "L"
    with pytest.raises(ValueError, match="shape"):
        to_png(torch.zeros(2, 3, 4, 4))


def test_widget_starts_with_the_similarity_ranking():
    images, emb, relevant = _pool()
    ui = RelevanceFeedbackWidget(images, emb, query=int(relevant.nonzero()[0]), relevant=relevant, n_show=12, columns=4, k=20)
    expected = RelevanceFeedback(emb, int(relevant.nonzero()[0])).ranking()[:12].tolist()
    assert ui.shown() == expected
    assert [t.caption.value for t in ui.tiles] == [f"#{i}" for i in expected]
    assert all(bytes(t.image.value).startswith(b"\x89PNG") for t in ui.tiles)
    assert isinstance(ui.widget, w.VBox) and "precision@20" in ui.status.value
    assert "application/vnd.jupyter.widget-view+json" in ui._repr_mimebundle_()


def test_clicks_mark_toggle_and_colour_the_buttons():
    images, emb, relevant = _pool()
    ui = RelevanceFeedbackWidget(images, emb, query=0, relevant=relevant, n_show=6)
    tile = ui.tiles[0]
    tile.up.click()
    assert ui.feedback.labels == {tile.index: True} and tile.up.button_style == "success"
    assert "marked 1" in ui.status.value
    tile.down.click()
    assert ui.feedback.labels == {tile.index: False}
    assert tile.up.button_style == "" and tile.down.button_style == "danger"
    tile.down.click()  # a second click on the same mark removes it
    assert ui.feedback.labels == {} and tile.down.button_style == ""


def test_retrain_button_reranks_hides_marked_items_and_raises_precision():
    images, emb, relevant = _pool()
    query = int(relevant.nonzero()[0])
    ui = RelevanceFeedbackWidget(images, emb, query=query, relevant=relevant, n_show=24, columns=6, k=20)
    status_before, shown_before = ui.status.value, ui.shown()
    precision_before = ui.precision()
    for tile in ui.tiles:  # a careful user: marks every shown item by the truth
        (tile.up if relevant[tile.index] else tile.down).click()
    marked = set(ui.feedback.labels)
    ui.retrain_button.click()
    assert ui.rounds == 1 and ui.feedback.classifier is not None
    assert ui.shown() != shown_before
    assert marked.isdisjoint(ui.shown())  # a new page of candidates
    assert ui.status.value != status_before and "round 1" in ui.status.value
    assert ui.precision() > precision_before
    # the grid shows the top of the probe's ranking, as the oracle computes it
    assert ui.shown() == ui.feedback.ranking(exclude_labeled=True)[:24].tolist()


def test_widget_without_ground_truth_shows_counts_only():
    images, emb, _ = _pool()
    ui = RelevanceFeedbackWidget(images, emb, query=3, n_show=4)
    ui.tiles[0].up.click()
    ui.tiles[1].down.click()
    ui.retrain_button.click()
    assert ui.precision() is None
    assert "precision" not in ui.status.value and "marked 1" in ui.status.value


def test_widget_rejects_mismatched_inputs():
    images, emb, relevant = _pool()
    with pytest.raises(ValueError, match="same pool"):
        RelevanceFeedbackWidget(images[:-1], emb, query=0)
    with pytest.raises(ValueError, match="bool mask"):
        RelevanceFeedbackWidget(images, emb, query=0, relevant=relevant.long())


def test_retrain_signals_completion_after_the_last_tile():
    """The browser test (and a person) may trust the grid once the status says "round N"
    and the button is enabled again: both must come after every tile's update."""
    images, emb, relevant = _pool()
    ui = RelevanceFeedbackWidget(images, emb, query=int(relevant.nonzero()[0]), relevant=relevant, n_show=12, columns=6)
    for tile in ui.tiles[:6]:
        (tile.up if relevant[tile.index] else tile.down).click()
    events: list[tuple[str, object]] = []
    ui.retrain_button.observe(lambda ch: events.append(("disabled", ch["new"])), names="disabled")
    ui.status.observe(lambda ch: events.append(("status", ch["new"])), names="value")
    for i, tile in enumerate(ui.tiles):
        tile.caption.observe(lambda ch, i=i: events.append(("tile", i)), names="value")
    ui.retrain_button.click()
    assert events[0] == ("disabled", True) and "re-ranking" in events[1][1]
    last_tile = max(n for n, (kind, _) in enumerate(events) if kind == "tile")
    round_1 = next(n for n, (kind, v) in enumerate(events) if kind == "status" and "round 1" in v)
    assert last_tile < round_1 < len(events) - 1 and events[-1] == ("disabled", False)
    assert not ui.retrain_button.disabled


def test_failed_retrain_re_enables_the_button(monkeypatch):
    images, emb, relevant = _pool()
    ui = RelevanceFeedbackWidget(images, emb, query=0, relevant=relevant, n_show=6)
    monkeypatch.setattr(ui.feedback, "retrain", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        ui.retrain()
    assert not ui.retrain_button.disabled and "round 0" in ui.status.value
