"""fsl_utils.grading.sanitize over a catalogue of payloads: in markdown, in every output MIME
type and through the formgrader's and feedback's own renderer (nbconvert's HTMLExporter with the
course's nbgrader_config.py settings), nothing stays active; ordinary content keeps its form.

The judge (:class:`_Active`) is Python's HTML parser on the sanitiser's *output*: that output is
bleach's normalised serialisation, so there is no parser ambiguity left to exploit. The real
browser test is tests/test_grading_browser.py.
"""

from __future__ import annotations

import html.parser
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from fsl_utils.grading.sanitize import TAGS, clean_html, clean_markdown, clean_output, is_active, sanitize_notebook

ROOT = Path(__file__).resolve().parents[1]
U = "http://127.0.0.1:9/"
#: name -> HTML or markdown that is active in a browser when rendered as is
PAYLOADS = {
    "script": f"<script>fetch('{U}')</script>",
    "script_upper": f"<SCRIPT SRC={U}x.js></SCRIPT>",
    "img_onerror": "<img src=x onerror=alert(1)>",
    "svg_onload": "<svg onload=alert(1)><circle r=3 /></svg>",
    "svg_script": "<svg><script>alert(1)</script></svg>",
    "svg_animate_href": "<svg><a><animate attributeName=href values=javascript:alert(1) /><text y=10>x</text></a></svg>",
    "iframe_srcdoc": "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
    "iframe_src": f"<iframe src={U}></iframe>",
    "object": f"<object data={U}x.swf></object>",
    "embed": f"<embed src={U}x>",
    "js_url": "<a href=\"javascript:alert(1)\">x</a>",
    "js_url_entities": "<a href=\"&#106;avascript:alert(1)\">x</a>",
    "js_url_spaces": "<a href=\" javascript:alert(1)\">x</a>",
    "data_url_link": "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>",
    "vbscript": "<a href=\"vbscript:msgbox(1)\">x</a>",
    "meta_refresh": f"<meta http-equiv=refresh content=\"0;url={U}\">",
    "base": f"<base href={U}>",
    "link_css": f"<link rel=stylesheet href={U}x.css>",
    "style_import": f"<style>@import url({U}x.css)</style>",
    "style_attr": f"<div style=\"background:url({U}x.png)\">x</div>",
    "external_img": f"<img src={U}x.png>",
    "srcset": f"<img srcset=\"{U}x.png 1x\">",
    "form": f"<form action={U}><button>go</button></form>",
    "formaction": f"<button formaction={U}>go</button>",
    "details_ontoggle": "<details open ontoggle=alert(1)><summary>s</summary></details>",
    "input_autofocus": "<input autofocus onfocus=alert(1)>",
    "body_onload": "<body onload=alert(1)>",
    "mxss_math": "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "mxss_noscript": "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    "template": "<template><img src=x onerror=alert(1)></template>",
    "video": "<video><source onerror=alert(1)></video>",
    "audio_src": f"<audio src={U}x.mp3 autoplay></audio>",
    "marquee": "<marquee onstart=alert(1)>x</marquee>",
    "id_clobber": "<img id=formgrader_settings name=location>",
}
MARKDOWN_PAYLOADS = {
    "md_image": f"![tracking]({U}x.png)",
    "md_js_link": "[click](javascript:alert(1))",
    "md_autolink_js": "<javascript:alert(1)>",
    "md_html_block": "<div>\n<script>alert(1)</script>\n</div>",
    "md_inline_html": "text <img src=x onerror=alert(1)> more",
    **{f"md_{k}": v for k, v in PAYLOADS.items()},
}


class _Active(html.parser.HTMLParser):
    """Collects what would run or load in a browser: tags outside the allow-list, event handlers,
    script URLs and any URL that makes the browser fetch something."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") or name in ("style", "srcset", "formaction", "action", "id", "name"):
                self.found.append(f"{tag}[{name}]")
            if name == "href" and not value.startswith(("http://", "https://", "mailto:", "#")):
                self.found.append(f"{tag}[href={value[:30]}]")
            if name == "src" and not value.startswith("data:image/"):
                self.found.append(f"{tag}[src={value[:30]}]")


def active(text: str) -> list[str]:
    judge = _Active()
    judge.feed(text)
    return judge.found


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_html_payload_is_inert(name):
    assert active(PAYLOADS[name]) or name in ("id_clobber",), f"the judge misses {name}: it cannot tell"  # the judge sees each payload
    assert active(clean_html(PAYLOADS[name])) == [], clean_html(PAYLOADS[name])


@pytest.mark.parametrize("name", sorted(MARKDOWN_PAYLOADS))
def test_markdown_payload_is_inert_once_rendered(name):
    from nbconvert.filters import markdown2html

    source = MARKDOWN_PAYLOADS[name]
    cleaned = clean_markdown(source)
    assert active(markdown2html(cleaned)) == [], markdown2html(cleaned)


def test_ordinary_markdown_is_left_exactly_as_written():
    ordinary = [
        "# Prototypes\n\nThe class mean $c_k = \\frac{1}{|S_k|} \\sum_i f(x_i)$, and $a < b$ for *every* `x<y`.",
        "| k | acc |\n|---|---|\n| 1 | 0.9 |\n\n> a quote\n\n1. one\n2. two",
        "```python\nif a < b:\n\n    pass\n```",
        "See [the paper](https://arxiv.org/abs/1703.05175) and <b>bold</b>, <sub>2</sub>, <br>.",
        "<details><summary>Hint</summary>Use the mean.</details>",
    ]
    for text in ordinary:
        assert clean_markdown(text) == text


@pytest.mark.parametrize("mime", ["text/html", "text/markdown", "image/svg+xml", "application/javascript",
                                  "application/vnd.jupyter.widget-view+json", "text/latex", "application/json"])
def test_every_output_type_is_inert(mime):
    payload = {"text/html": PAYLOADS["img_onerror"] + PAYLOADS["script"], "text/markdown": MARKDOWN_PAYLOADS["md_image"],
               "image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'><script>alert(1)</script></svg>",
               "application/javascript": "alert(1)", "application/vnd.jupyter.widget-view+json": {"model_id": "x"},
               "text/latex": "$\\href{javascript:alert(1)}{x}$", "application/json": {"a": 1}}[mime]
    out = clean_output(new_output("display_data", data={mime: payload}))
    assert set(out.data) <= {"text/plain", "text/html", "image/png", "image/jpeg", "image/gif", "text/latex"}
    assert active(out.data.get("text/html", "")) == []
    if mime == "image/svg+xml":
        assert out.data["text/html"].startswith('<img src="data:image/svg+xml;base64,')  # shown, as an image (never runs)


def test_image_outputs_and_their_metadata_are_checked():
    bad = new_output("display_data", data={"image/png": "\" onerror=\"alert(1)", "text/plain": "fig"},
                     metadata={"image/png": {"width": "1 onerror=alert(1)", "height": 30}})
    assert clean_output(bad).data == {"text/plain": "fig"}
    good = new_output("display_data", data={"image/png": "iVBORw0KGgo=\n"}, metadata={"image/png": {"width": "1 onerror=alert(1)", "height": 30},
                                                                                     "isolated": True})
    out = clean_output(good)
    assert out.data == {"image/png": "iVBORw0KGgo="} and out.metadata == {"image/png": {"height": 30}}


def _hostile_notebook() -> nbformat.NotebookNode:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}, "title": "<script>alert(1)</script>"})
    nb.cells.append(new_markdown_cell("\n\n".join(MARKDOWN_PAYLOADS.values()), metadata={"tags": ["\"><script>alert(1)</script>"]}))
    outputs = [new_output("display_data", data={"text/html": p}) for p in PAYLOADS.values()]
    outputs += [new_output("display_data", data={"application/javascript": "alert(1)"}),
                new_output("display_data", data={"text/html": PAYLOADS["script"]}, metadata={"text/html": {"isolated": True}}),
                new_output("execute_result", data={"text/markdown": MARKDOWN_PAYLOADS["md_inline_html"]}, execution_count=1),
                new_output("stream", name="stdout", text="<script>alert(1)</script>"),
                new_output("error", ename="<script>", evalue="<img src=x onerror=alert(1)>", traceback=["<script>alert(1)</script>"])]
    nb.cells.append(new_code_cell("x = 1", outputs=outputs))
    return nb


def test_formgrader_and_feedback_renderer_builds_inert_pages(tmp_path):
    """The course's nbgrader_config.py settings (HTMLExporter.sanitize_html with the course's
    clean_html), nbgrader's own formgrade and feedback templates, a hostile notebook sanitised as
    autograding leaves it: no payload is active in the page. The same notebook unsanitised is the
    control: nbgrader's templates render markdown cells without any cleaning, so its payloads are
    active there (which is why the notebook itself must be cleaned)."""
    from nbconvert import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config, PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    for template in ("formgrade", "feedback"):
        c = Config(config)
        c.HTMLExporter.template_name = template
        c.HTMLExporter.extra_template_basedirs = [handlers.template_path]
        c.HTMLExporter.extra_template_paths = [str(Path(handlers.__file__).parent / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
        exporter = HTMLExporter(config=c)
        resources = {"assignment_id": "a", "notebook_id": "n", "submission_id": "s", "index": 0, "total": 1, "base_url": "",
                     "student": "st", "last_name": "", "first_name": "", "notebook_path": "x.ipynb",
                     "nbgrader": {"score": 1.0, "max_score": 2.0, "late_penalty": 0.0, "notebook": "n"}}
        control = exporter.from_notebook_node(_hostile_notebook(), resources=dict(resources))[0].split("<body", 1)[1]
        assert _payloads_in(control), f"{template}: the control page should show active payloads (else the judge is blind)"
        page = exporter.from_notebook_node(sanitize_notebook(_hostile_notebook()), resources=dict(resources))[0].split("<body", 1)[1]
        assert _payloads_in(page) == [], template


def _payloads_in(body: str) -> list[str]:
    """Payloads that are active in a rendered page: a payload's code or URL inside a <script>
    element or in any attribute (event handlers, links, sources). Text is never active, and the
    page's own scripts and handlers carry no payload, so they are not counted."""
    found = ["<script> with a payload"] if any("alert(1)" in t or U in t for t in _scripts(body)) else []
    found += [f"{n}={v[:80]}" for n, v in _attribute_values(body) if (n.startswith("on") or n not in ("title", "alt", "class"))
              and ("alert(1)" in v or U in v or "javascript:" in v.lower())]
    return found


def _scripts(page: str) -> list[str]:
    class P(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.inside, self.texts = False, []

        def handle_starttag(self, tag, attrs):
            self.inside = tag == "script"

        def handle_endtag(self, tag):
            self.inside = False

        def handle_data(self, data):
            if self.inside:
                self.texts.append(data)

    p = P()
    p.feed(page)
    return p.texts


def _attribute_values(page: str) -> list[tuple[str, str]]:
    class P(html.parser.HTMLParser):
        values: list[tuple[str, str]] = []

        def handle_starttag(self, tag, attrs):
            self.values += [(n, v or "") for n, v in attrs]

    p = P()
    p.values = []
    p.feed(page)
    return p.values


def test_sanitize_notebook_keeps_only_known_metadata():
    nb = sanitize_notebook(_hostile_notebook())
    assert set(nb.metadata) == {"kernelspec"}
    assert all("tags" not in cell.metadata for cell in nb.cells)
    assert is_active(PAYLOADS["script"]) and not is_active("<p>fine</p>")
    json.dumps(nb)  # still a valid notebook
    nbformat.validate(nb)
