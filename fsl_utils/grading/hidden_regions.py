"""The ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` regions of a cell's source.

Shared by the execute preprocessor (which runs a region's checks in the grader), the feedback
(which removes the regions) and the sandbox's stubs (which read the given cells' imports).
"""

from __future__ import annotations

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def strip_hidden(source: str) -> tuple[str, list[str]]:
    """``source`` without hidden regions, and the removed lines."""
    kept, hidden, inside = [], [], False
    for line in source.split("\n"):
        if BEGIN in line:
            inside = True
        elif END in line:
            inside = False
        elif inside:
            hidden.append(line)
        else:
            kept.append(line)
    return "\n".join(kept).rstrip() + ("\n# (hidden tests)" if hidden else ""), hidden


def secret_lines(texts: list[str], min_length: int = 25) -> set[str]:
    """Distinctive lines of hidden code: stripped, long enough not to occur by chance."""
    return {s for t in texts for s in (line.strip() for line in t.split("\n")) if len(s) >= min_length and not s.startswith(("#", "import ", "from "))}
