"""Feedback without hidden tests: an nbgrader preprocessor for ``generate_feedback``.

Feedback is rendered from the autograded notebook, whose grade cells were restored from
the gradebook and therefore contain the hidden test regions. :class:`SanitizeFeedback`
keeps what a student should see — each test cell's result, points (added by nbgrader's
``GetGrades``) and the message of its error — and removes:

* the ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` regions of every cell;
* tracebacks (they can quote hidden code): an error becomes ``Name: message``;
* any output line that quotes a line of the assignment's ``hidden_tests.py`` or of a
  hidden region (code that printed hidden test source).

It also adds, at the top, the files of the submission that the grader refused to take in
(links, special or oversized files, :mod:`.intake`) with the reason for each.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from nbconvert.preprocessors import Preprocessor
from nbformat.v4 import new_markdown_cell
from traitlets import Bool

from .hidden_regions import secret_lines, strip_hidden
from .paths import course_root, hidden_tests_file

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MAX_MESSAGE = 1500
REMOVED = "[output removed from feedback: it quoted hidden test code]"


class SanitizeFeedback(Preprocessor):
    """Remove hidden test code and tracebacks from a notebook before it becomes feedback."""

    #: nbconvert skips preprocessors that are not enabled (its default is False).
    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb: Any, resources: dict) -> tuple[Any, dict]:
        note = refused_note(resources)
        if note:
            nb.cells.insert(0, new_markdown_cell(note))
        hidden: list[str] = []
        for cell in nb.cells:
            cell.source, removed = strip_hidden(cell.source)
            hidden += removed
        secrets = secret_lines(hidden + self._hidden_files(resources))
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            outputs = []
            for out in cell.get("outputs", []):
                if out.output_type == "error":
                    message = _ANSI.sub("", f"{out.ename}: {out.evalue}")[:MAX_MESSAGE]
                    out.traceback = [line for line in message.split("\n") if not self._leaks(line, secrets)] or [out.ename]
                    out.evalue = "\n".join(out.traceback)[len(out.ename) + 2 :]
                elif out.output_type == "stream":
                    out.text = "\n".join(REMOVED if self._leaks(line, secrets) else line for line in out.text.split("\n"))
                elif "data" in out:
                    for mime in [m for m in out.data if m.startswith("text/")]:
                        text = out.data[mime] if isinstance(out.data[mime], str) else "".join(out.data[mime])
                        if any(self._leaks(line, secrets) for line in text.split("\n")):
                            out.data = {"text/plain": REMOVED}
                            break
                outputs.append(out)
            cell.outputs = outputs
        return nb, resources

    @staticmethod
    def _leaks(line: str, secrets: set[str]) -> bool:
        return any(s in line for s in secrets)

    @staticmethod
    def _hidden_files(resources: dict) -> list[str]:
        info = resources.get("nbgrader", {})
        assignment = info.get("assignment")
        if not assignment:
            return []
        try:
            path = hidden_tests_file(assignment)
        except FileNotFoundError:
            return []
        return [path.read_text(encoding="utf-8")] if path.is_file() else []


def refused_note(resources: dict) -> str | None:
    """Markdown (HTML-escaped names) listing the student's refused files, from
    ``grading/refused_files.json`` of the course; None when nothing was refused."""
    info = resources.get("nbgrader", {})
    try:
        path = course_root() / "grading" / "refused_files.json"
        refused = json.loads(path.read_text()).get(info.get("student"), {}) if path.is_file() else {}
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    if not refused:
        return None
    items = "".join(f"<li><code>{html.escape(repr(name)[1:-1][:200])}</code>: {html.escape(str(reason)[:300])}</li>" for name, reason in sorted(refused.items()))
    return ("<p><strong>Not graded:</strong> the grader did not take in these entries of your submission "
            "(a submission must consist of ordinary files):</p><ul>" + items + "</ul>")
