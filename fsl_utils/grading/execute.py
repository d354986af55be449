"""nbgrader's ``Execute`` preprocessor, made safe for hostile or broken submissions.

nbgrader gives full points to a test cell without an error output. When the kernel dies
(``os._exit``, a crash, the memory limit) or cannot be started, nbclient raises and the
cells after that point keep *no* output — the failure behind nbgrader issue #427, where
the remaining tests counted as passed. :class:`SafeExecute` catches every such failure
and gives each code cell that did not run an error output naming the reason, so those
tests score 0, earlier cells keep the points they earned, and grading goes on.
"""

from __future__ import annotations

from typing import Any

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute

NOT_RUN = "NotRunError"


class SafeExecute(Execute):
    """``Execute`` that never raises: cells that could not run get an explanatory error."""

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        self._last_done = -1
        try:
            return super().preprocess(nb, resources, km)
        except Exception as err:  # noqa: BLE001 (dead kernel, timeouts, start failures alike)
            reason = _describe(err)
            self.log.warning("Execution stopped: %s", reason)
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code" and index > self._last_done:
                    cell.outputs = list(cell.get("outputs", [])) + [
                        NotebookNode(
                            output_type="error",
                            ename=NOT_RUN,
                            evalue=f"this cell did not run to completion: {reason}. Cells from here on get no points.",
                            traceback=[f"{NOT_RUN}: {reason}"],
                        )
                    ]
            return nb, resources

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int) -> tuple[NotebookNode, Any]:
        result = super().preprocess_cell(cell, resources, index)
        self._last_done = index
        return result


def _describe(err: BaseException) -> str:
    name = type(err).__name__
    if name == "DeadKernelError":
        return "the kernel died (the code exited, crashed or exceeded the memory or CPU limit)"
    if "Timeout" in name or "Unresponsive" in name:
        return "the kernel stopped responding (time limit)"
    return f"{name}: {str(err).strip().splitlines()[0][:300] if str(err).strip() else ''}"
