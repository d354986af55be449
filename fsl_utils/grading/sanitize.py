"""What a submission carries is rendered inert wherever a person views it.

An instructor opens submissions in nbgrader's formgrader, at the Jupyter server's origin: a
script in a student's markdown or in an output (``display(HTML(...))``) would run with the
instructor's session and could call the server's API. Feedback pages are opened by students
and instructors alike. Two layers, both built on ``bleach`` (html5lib's browser-grade parser):

* :class:`SanitizeSubmission` (an nbgrader/nbconvert preprocessor, the last autograde step and
  the first feedback step) cleans the notebook itself, so the autograded copy on disk is safe
  for any viewer: every output keeps only inert MIME types (text, PNG/JPEG/GIF images, SVG
  shown as an ``<img>``, cleaned HTML; scripts, widgets and unknown types are dropped), output
  and cell metadata only what renderers need, and a markdown cell whose rendering holds raw
  HTML, images or links other than http(s)/mailto is replaced by its cleaned rendering.
* :func:`clean_html` replaces nbconvert's ``clean_html`` filter when ``HTMLExporter.sanitize_html``
  is on (``nbgrader_config.py`` sets both for the formgrader and ``generate_feedback``), so the
  page itself is built from sanitised HTML; nbconvert then also leaves out JavaScript outputs.

The allow-list (:data:`TAGS`, :data:`ATTRIBUTES`): formatting, tables, lists, code, links to
http(s)/mailto and ``#`` anchors, and images from ``data:`` URLs only — nothing that runs code
(scripts, event-handler attributes, ``javascript:`` URLs, iframes, objects, inline SVG, forms,
``<base>``/``<meta>``/``<link>``/``<style>``) and nothing that makes the viewer's browser fetch
anything (external images, CSS). Element ids are dropped (they could shadow the page's own).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import bleach
from nbconvert.preprocessors import Preprocessor
from nbformat.notebooknode import NotebookNode
from traitlets import Bool

TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del", "details", "div", "dl", "dt",
    "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p",
    "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "u", "ul", "var",
})
_IMAGE_URL = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=\s]*\Z")
_SAFE_HREF = re.compile(r"(https?://|mailto:|#)", re.IGNORECASE)


def _attribute(tag: str, name: str, value: str) -> bool:
    if name in ("class", "title"):
        return True
    if tag == "a" and name == "href":
        return bool(_SAFE_HREF.match(value.strip()))
    if tag == "img":
        if name == "src":
            return bool(_IMAGE_URL.match(value.strip()))
        return name in ("alt", "width", "height")
    if tag in ("td", "th"):
        return name in ("colspan", "rowspan", "align")
    if tag in ("col", "colgroup"):
        return name == "span"
    if tag == "ol":
        return name in ("start", "type")
    return False


ATTRIBUTES = _attribute
_PROTOCOLS = frozenset({"http", "https", "mailto", "data"})  # data: only where _attribute allows it (images)
_CLEANER = bleach.sanitizer.Cleaner(tags=TAGS, attributes=ATTRIBUTES, protocols=_PROTOCOLS, strip=False, strip_comments=True)


def clean_html(html: Any) -> str:
    """``html`` with everything outside the allow-list escaped (shown as text, never active)."""
    text = html.decode() if isinstance(html, bytes) else "".join(html) if isinstance(html, list) else str(html)
    return _CLEANER.clean(text)


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _base64(value: Any) -> str | None:
    text = re.sub(r"\s", "", _text(value))
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return text


def _markdown_html(source: str) -> str:
    from nbconvert.filters import markdown2html

    return markdown2html(source)


def clean_markdown(source: str) -> str:
    """``source`` unchanged when its rendering is inert (:func:`is_active`); otherwise its cleaned
    rendering as one HTML block (no blank lines, so markdown never parses inside it again)."""
    rendered = _markdown_html(source)
    if not is_active(rendered):
        return source
    body = "\n".join(line if line.strip() else "&#8203;" for line in clean_html(rendered).strip().split("\n"))
    return f'<div class="fsl-sanitized">\n{body}\n</div>'


def is_active(html: str) -> bool:
    """Whether ``html`` holds a tag, attribute or URL outside the allow-list, as bleach parses it:
    a tag bleach escapes (its ``strip=False`` and ``strip=True`` cleanings differ) or an attribute
    it refuses (ids, which it also drops, do not count: markdown gives every heading one)."""
    refused = []

    def watch(tag: str, name: str, value: str) -> bool:
        ok = _attribute(tag, name, value)
        if not ok and name != "id":
            refused.append((tag, name))
        return ok

    escaped = bleach.sanitizer.Cleaner(tags=TAGS, attributes=watch, protocols=_PROTOCOLS, strip=False, strip_comments=True).clean(html)
    stripped = bleach.sanitizer.Cleaner(tags=TAGS, attributes=_attribute, protocols=_PROTOCOLS, strip=True, strip_comments=True).clean(html)
    return bool(refused) or escaped != stripped


def clean_output(out: NotebookNode) -> NotebookNode | None:
    """One output with only inert content (None: nothing of it can be shown safely)."""
    kind = out.get("output_type")
    if kind == "stream":
        return NotebookNode(output_type="stream", name="stderr" if out.get("name") == "stderr" else "stdout", text=_text(out.get("text", "")))
    if kind == "error":
        return NotebookNode(output_type="error", ename=_text(out.get("ename", "")), evalue=_text(out.get("evalue", "")),
                            traceback=[_text(line) for line in out.get("traceback", []) if isinstance(line, (str, list))])
    if kind not in ("display_data", "execute_result"):
        return None
    data, meta = out.get("data", {}), out.get("metadata", {})
    clean, clean_meta = {}, {}
    for mime in ("image/png", "image/jpeg", "image/gif"):
        if mime in data and (value := _base64(data[mime])) is not None:
            clean[mime] = value
            size = meta.get(mime, {}) if isinstance(meta.get(mime), dict) else {}
            dims = {k: size[k] for k in ("width", "height") if isinstance(size.get(k), (int, float)) and not isinstance(size.get(k), bool)}
            if dims:
                clean_meta[mime] = dims
    html = []
    if "text/html" in data:
        html.append(clean_html(_text(data["text/html"])))
    elif "text/markdown" in data:
        html.append(clean_html(_markdown_html(_text(data["text/markdown"]))))
    if "image/svg+xml" in data and not any(m in clean for m in ("image/png", "image/jpeg", "image/gif")):
        svg = base64.b64encode(_text(data["image/svg+xml"]).encode()).decode()
        html.append(f'<img src="data:image/svg+xml;base64,{svg}" alt="SVG figure">')  # an <img> never runs the SVG's scripts
    if html:
        clean["text/html"] = "\n".join(html)
    if "text/plain" in data:
        clean["text/plain"] = _text(data["text/plain"])
    if "text/latex" in data:
        clean["text/latex"] = _text(data["text/latex"])
    if not clean:
        clean["text/plain"] = f"[output of type {', '.join(sorted(map(str, data)))[:200]} removed: it cannot be shown safely]"
    node = NotebookNode(output_type=kind, data=clean, metadata=NotebookNode(clean_meta))
    if kind == "execute_result":
        node.execution_count = out.get("execution_count") if isinstance(out.get("execution_count"), int) else None
    return node


_CELL_META = ("nbgrader", "editable", "deletable", "collapsed", "scrolled", "trusted")
_NB_META = ("kernelspec", "language_info", "nbgrader")


def sanitize_notebook(nb: NotebookNode) -> NotebookNode:
    """The whole notebook, inert for any viewer (see the module docstring); in place."""
    nb.metadata = NotebookNode({k: v for k, v in nb.get("metadata", {}).items() if k in _NB_META})
    for cell in nb.cells:
        cell.metadata = NotebookNode({k: v for k, v in cell.get("metadata", {}).items() if k in _CELL_META})
        cell.pop("attachments", None)
        if cell.cell_type == "markdown":
            cell.source = clean_markdown(_text(cell.source))
        elif cell.cell_type == "raw":
            cell.source = clean_html(_text(cell.source))
        elif cell.cell_type == "code":
            cell.outputs = [o for o in (clean_output(out) for out in cell.get("outputs", [])) if o is not None]
    return nb


class SanitizeSubmission(Preprocessor):
    """nbconvert/nbgrader preprocessor: :func:`sanitize_notebook` (autograde and feedback)."""

    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        return sanitize_notebook(nb), resources
