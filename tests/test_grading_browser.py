"""A hostile submission in a real browser: nbgrader's formgrader (JupyterLab's server on
localhost, the instructor's session) and the student's feedback page, in headless Debian
Chromium driven by Playwright. The submission ``script_in_submission`` of the shared graded
batch (tests/grading/adversarial.py) carries script, event handlers, javascript: URLs,
iframes, objects, active SVG, remote resources and a same-origin API call in a markdown cell
and in outputs of every MIME type, each reporting to a local listener: the listener must
hear nothing while the pages are open.

The control: the same payloads rendered by nbconvert without sanitising, opened in the same
browser, must reach the listener (otherwise the test could not fail).

Without Chromium or playwright the test skips locally with the reason, and FAILS when ``CI``
is set (.ci/run installs Chromium).
"""

from __future__ import annotations

import time
from pathlib import Path


from browser.lab import chromium_page, jupyter_lab, require_browser

from grading import adversarial
ASSIGNMENT, STUDENT = "protonet", "script_in_submission"
SHOTS = Path(__file__).resolve().parents[1] / "build" / "browser"


def _heard(listener, since: int = 0) -> list[str]:
    return [raw.split(b"\r\n", 1)[0].decode(errors="replace") for raw in listener.received[since:]]


def _settle(page, listener, seconds: float = 4.0) -> None:
    """Let the page run its scripts (and any payload) for a while."""
    try:
        page.wait_for_load_state("networkidle", timeout=15_000)
    except Exception:  # noqa: BLE001 (the page's CDN scripts cannot load offline; that is fine)
        pass
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)


def _offline(route) -> None:
    """Requests to this machine go through (the listener must see them); the internet is not there."""
    from urllib.parse import urlsplit

    url = urlsplit(route.request.url)
    if url.scheme in ("file", "data", "blob") or url.hostname in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        route.abort()


def _control_page(tmp_path: Path, port: int) -> Path:
    """The markdown and output payloads rendered by nbconvert as is (no sanitising)."""
    from nbconvert import HTMLExporter
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    u = f"http://127.0.0.1:{port}"
    outputs = [new_output("display_data", data={"text/html": f"<script>fetch('{u}/control-out-html')</script>"}),
               new_output("display_data", data={"application/javascript": f"fetch('{u}/control-out-js')"})]
    nb = new_notebook(cells=[new_code_cell("x = 1", outputs=outputs),  # (first: the markdown's meta refresh leaves the page)
                             new_markdown_cell(adversarial._view_payload_markdown(str(port)).replace("/md-", "/control-md-"))])
    page = tmp_path / "control.html"
    page.write_text(HTMLExporter(template_name="classic").from_notebook_node(nb)[0])
    return page


def test_formgrader_and_feedback_show_a_hostile_submission_inert(graded_course, tmp_path):
    require_browser()
    from nbgrader.api import Gradebook

    root, listener = graded_course["root"], graded_course["view_listener"]
    assert listener.received == [], f"the listener heard something already: {_heard(listener)}"
    with Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}") as gb:
        submission_id = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, STUDENT).id
    feedback = root / "grading" / "feedback" / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.html"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium_page() as page:
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.route("**/*", _offline)  # (the pages' CDN scripts: answered at once instead of hanging offline)
        page.goto(_control_page(tmp_path, listener.port).as_uri(), wait_until="commit")
        _settle(page, listener)
        control = _heard(listener)
        assert any("control-md-" in line for line in control) and any("control-out-" in line for line in control), (
            f"the unsanitised control page should reach the listener, heard {control}")
        page.goto("about:blank")  # leave the control page (its meta refresh keeps reloading the listener's URL)
        page.wait_for_timeout(4000)  # and let the listener finish reading its last connections
        seen = len(listener.received)

        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        with jupyter_lab(root) as lab:
            url = f"http://127.0.0.1:{lab.port}/formgrader/submissions/{submission_id}/?token={lab.token}"
            try:
                page.goto(url, wait_until="domcontentloaded")
                page.wait_for_selector("text=My notes", timeout=60_000)  # the submission's own markdown heading is shown
                _settle(page, listener)
                for link in page.locator("a:has-text('a link')").all():  # the payload link, if anything of it is left
                    link.click(timeout=5_000, no_wait_after=True)
                _settle(page, listener, 2.0)
                active = page.evaluate("""() => [...document.querySelectorAll('iframe, object, embed, svg script, a[href^="javascript"],'
                    + '[onerror], [onload], [ontoggle], [onfocus], [onstart], meta[http-equiv], base')].map(e => e.outerHTML.slice(0, 120))""")
                page.screenshot(path=str(SHOTS / "formgrader_hostile_submission.png"), full_page=True)
            except Exception:
                page.screenshot(path=str(SHOTS / "formgrader_failure.png"), full_page=True)
                print(f"screenshot: {SHOTS / 'formgrader_failure.png'}; JupyterLab log: {lab.log}")
                raise
        assert active == [], f"active elements from the submission in the formgrader: {active}"
        page.goto(feedback.as_uri(), wait_until="domcontentloaded")
        page.wait_for_selector("text=My notes", timeout=30_000)
        _settle(page, listener)
    heard = _heard(listener, seen)
    assert heard == [], f"viewing the submission reached the listener: {heard}"
    port = f":{listener.port}"
    assert not [r for r in requests if port in r], [r for r in requests if port in r]
    assert dialogs == []
