"""The relevance-feedback widget in a real browser: JupyterLab on localhost, headless
Debian Chromium driven by Playwright. Clicks thumbs up / down and "retrain & re-rank",
and checks that the grid shows the probe's new ranking (computed here as the oracle).
Screenshots land in build/browser/ (marked, then re-ranked).

Without Chromium or playwright the test skips locally with the reason, and FAILS when
``CI`` is set (CI installs Chromium in .ci/run).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from browser.lab import chromium_page, jupyter_lab, missing_requirements
from browser.relevance_notebook import N_SHOW, synthetic_pool, write_notebook
from fsl_utils.retrieval import RelevanceFeedback

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "browser"


def _require_browser() -> None:
    why = missing_requirements()
    if why is None:
        return
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"The browser test must run in CI but {why}.")
    pytest.skip(f"browser test skipped: {why}")


def _captions(page) -> list[int]:
    return [int(t.strip().lstrip("#")) for t in page.locator(".fsl-caption").all_inner_texts()]


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _run_first_cell(page, attempts: int = 4) -> None:
    """Shift+Enter in the first cell until its prompt shows it queued or ran.

    JupyterLab can drop an execution request sent while the kernel session is still
    settling (the prompt stays "[ ]:"), so wait for an idle kernel and retry."""
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', state="attached", timeout=90_000)
    prompt = page.locator(".jp-Cell .jp-InputArea-prompt").first
    for _ in range(attempts):
        page.locator(".jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        try:
            _wait_for(lambda: prompt.inner_text().strip() not in ("[ ]:", ""), 15, "the first cell to start")
            return
        except AssertionError:
            continue
    raise AssertionError(f"the first cell never started after {attempts} Shift+Enter presses")


def test_relevance_widget_in_jupyterlab_and_chromium(tmp_path):
    _require_browser()
    images, emb, relevant, query = synthetic_pool()
    oracle = RelevanceFeedback(emb, query)
    expected_first = oracle.ranking()[:N_SHOW].tolist()
    write_notebook(tmp_path)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("relevance_feedback*.png"):
        old.unlink()
    with jupyter_lab(tmp_path) as lab, chromium_page() as page:
        try:
            page.set_default_timeout(60_000)
            page.goto(lab.url("relevance.ipynb"))
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            _run_first_cell(page)
            page.wait_for_selector(".fsl-tile", timeout=90_000)
            _wait_for(lambda: len(_captions(page)) == N_SHOW, 30, f"{N_SHOW} result tiles")
            first = _captions(page)
            assert first == expected_first, "the grid must start with the cosine-similarity ranking"
            status = page.locator(".fsl-status").inner_text()
            assert "marked 0" in status and "precision@" in status

            # mark the first six results by the ground truth, as a user would
            ups, downs = page.locator("button.fsl-up"), page.locator("button.fsl-down")
            for i, index in enumerate(first[:6]):
                (ups if relevant[index] else downs).nth(i).click()
                oracle.mark(index, bool(relevant[index]))
            n_up = sum(bool(relevant[i]) for i in first[:6])
            assert n_up not in (0, 6), "the test needs both kinds of marks; change the synthetic pool's seed"
            marked = f"marked {n_up} relevant, {6 - n_up} not relevant"
            _wait_for(lambda: marked in page.locator(".fsl-status").inner_text(), 20, "the marks to reach the kernel")
            colours = page.locator("button.fsl-up.mod-success").count() + page.locator("button.fsl-down.mod-danger").count()
            assert colours == 6, "every marked button is coloured"

            page.screenshot(path=str(SHOTS / "relevance_feedback_marked.png"), full_page=True)
            page.locator("button.fsl-retrain").click()
            oracle.retrain()
            expected_after = oracle.ranking(exclude_labeled=True)[:N_SHOW].tolist()
            # The kernel refills the grid tile by tile; reading it before the widget's
            # completion signal ("round 1" in the status line, set after the last tile,
            # then the button enabled again) can catch a half-old, half-new grid.
            _wait_for(lambda: "round 1" in page.locator(".fsl-status").inner_text(), 30, "the re-rank to finish (status 'round 1')")
            _wait_for(lambda: page.locator("button.fsl-retrain").is_enabled(), 10, "the retrain button to be enabled again")
            after = _captions(page)
            assert after == expected_after, "the grid must show the probe's ranking of the unmarked items"
            assert set(after).isdisjoint(first[:6])
            page.screenshot(path=str(SHOTS / "relevance_feedback.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(SHOTS / "relevance_feedback_failure.png"), full_page=True)
            print(f"screenshot of the failure: {SHOTS / 'relevance_feedback_failure.png'}; JupyterLab log: {lab.log}")
            raise
    assert (SHOTS / "relevance_feedback.png").stat().st_size > 10_000
