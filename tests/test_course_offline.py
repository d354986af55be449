"""The rendered course typesets its equations without a network connection: a notebook with
inline and display math, rendered as `make course` renders it, opened from disk in headless
Chromium with every network request refused. MathJax must come from the build folder and turn
every formula into SVG. The screenshot lands in build/browser/course_math.png.

Skips locally without Chromium or playwright (with the reason), fails under ``CI``."""

from __future__ import annotations

from pathlib import Path

import nbformat

from browser.lab import chromium_page, require_browser
from fsl_utils.course.build import html_exporter, local_mathjax

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "browser"
MARKDOWN = r"""# Equations, offline

Inline: the probe is $p(y = c \mid x) = \operatorname{softmax}(W h + b)_c$ with $h \in \mathbb{R}^{d}$.

$$
\ell_{i,j} = -\log \frac{\exp(\operatorname{sim}(z_i, z_j)/\tau)}{\sum_{k \ne i} \exp(\operatorname{sim}(z_i, z_k)/\tau)}
$$

A dollar in code stays code: `price = "$5"`."""


def test_rendered_equations_typeset_offline(tmp_path):
    require_browser("offline-math test")
    mathjax = local_mathjax(tmp_path)
    assert mathjax is not None, "MathJax is not installed: pip install -e '.[course]'"
    page_path = tmp_path / "lectures" / "math.html"
    page_path.parent.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(MARKDOWN)])
    body, _ = html_exporter(page_path, mathjax).from_notebook_node(nb)
    page_path.write_text(body, encoding="utf-8")
    SHOTS.mkdir(parents=True, exist_ok=True)
    refused: list[str] = []
    with chromium_page(width=900, height=500) as page:

        def only_files(route):
            if route.request.url.startswith("file://"):
                return route.continue_()
            refused.append(route.request.url)
            return route.abort()

        page.route("**/*", only_files)
        page.goto(page_path.as_uri())
        page.wait_for_function("() => document.querySelectorAll('mjx-container svg').length >= 3", timeout=60_000)
        page.screenshot(path=str(SHOTS / "course_math.png"), full_page=True)
        formulas = page.locator("mjx-container").count()
        display = page.locator('mjx-container[display="true"]').count()
        text = page.locator(".jp-RenderedMarkdown").inner_text()
    assert formulas == 3 and display == 1, (formulas, display)
    assert "\\operatorname" not in text and "$$" not in text  # no raw TeX left on the page
    assert 'price = "$5"' in text  # code is not math
    assert not [u for u in refused if "mathjax" in u.lower()], "MathJax must not be fetched from the network"
