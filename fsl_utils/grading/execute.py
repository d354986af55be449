"""nbgrader's ``Execute`` preprocessor, made safe for hostile or broken submissions.

* **Dead kernels never pass tests.** nbgrader gives full points to a test cell without an
  error output. When the kernel dies (``os._exit``, a crash, the memory limit) or cannot
  be started, nbclient raises and the cells after that point keep *no* output — the
  failure behind nbgrader issue #427, where the remaining tests counted as passed.
  :class:`SafeExecute` catches every such failure and gives each code cell that did not
  run an error output naming the reason, so those tests score 0, earlier cells keep the
  points they earned, and grading goes on.
* **Test cells score on errors only.** nbgrader 0.9 fails a test cell that wrote anything to
  stderr — a PyTorch ``UserWarning``, a ``DeprecationWarning`` or sklearn's
  ``ConvergenceWarning`` cost correct code its points while the feedback said "tests passed" —
  and reads an ``execute_result`` number as partial credit, which the kernel can emit at will.
  After a grade cell ran, :func:`score_on_errors` turns its stderr into ordinary text (still
  shown, marked as a warning) and its results into plain display outputs, so only an error
  output (a failed assertion, an exception, a failed hidden check) costs points.
* **Hidden tests run in the grader.** A hidden region made of ``run_hidden_test(...)``
  calls is not sent to the kernel: the visible part of the cell runs in the kernel, then
  the named check runs here, asking the kernel for data through
  :class:`~.checks.remote.RemoteProbe`; a failure becomes the cell's error output. Hidden regions
  with other code run in the kernel, as in plain nbgrader.
"""

from __future__ import annotations

import ast
import types
from typing import Any

from nbclient.exceptions import DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool

from .checks.hidden import HiddenTestError, load_hidden_tests, run_check
from .checks.remote import RemoteProbe
from .hidden_regions import BEGIN, strip_hidden

NOT_RUN = "NotRunError"
HIDDEN_ERROR = "HiddenTestError"
WARNING_NOTE = "[printed to stderr (a warning); it costs no points]\n"


def score_on_errors(cell: NotebookNode) -> None:
    """Make a grade cell's score depend on its error outputs only (see the module docstring)."""
    outputs = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            out = NotebookNode(output_type="stream", name="stdout", text=WARNING_NOTE + out.get("text", ""))
        elif out.get("output_type") == "execute_result":
            out = NotebookNode(output_type="display_data", data=out.get("data", {}), metadata=out.get("metadata", {}))
        outputs.append(out)
    cell.outputs = outputs


def hidden_calls(source: str) -> list[tuple[str, str]] | None:
    """The ``(assignment, test)`` of each ``run_hidden_test`` call in the hidden regions of
    ``source``; None when there is no hidden region or it holds anything else than those
    calls and imports (such code runs in the kernel)."""
    if BEGIN not in source:
        return None
    lines = strip_hidden(source)[1]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return None
    calls = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        call = node.value if isinstance(node, ast.Expr) else None
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "run_hidden_test" and len(call.args) >= 2
                and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in call.args[:2])):
            return None
        calls.append((call.args[0].value, call.args[1].value))
    return calls or None


class SafeExecute(Execute):
    """``Execute`` that never raises, and runs hidden tests in the grader's process."""

    remote_hidden_tests = Bool(True, help="Run run_hidden_test(...) regions in the grader against the kernel.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        self._last_done = -1
        self._hidden_modules: dict[str, types.ModuleType] = {}
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
        calls = hidden_calls(cell.source) if self.remote_hidden_tests and cell.cell_type == "code" else None
        if calls is None:
            result = super().preprocess_cell(cell, resources, index)
        else:
            original = cell.source
            cell.source = strip_hidden(original)[0]
            try:
                cell, _ = super().preprocess_cell(cell, resources, index)
            finally:
                cell.source = original
            if not any(out.output_type == "error" for out in cell.outputs):
                for assignment, name in calls:
                    message = self._remote_check(assignment, name, index, cell.metadata.get("nbgrader", {}).get("grade_id"))
                    if message is not None:
                        cell.outputs.append(NotebookNode(output_type="error", ename=HIDDEN_ERROR, evalue=message, traceback=[f"{HIDDEN_ERROR}: {message}"]))
                        break
            self.nb.cells[index] = cell
            result = (cell, self.resources)
        if result[0].cell_type == "code" and result[0].metadata.get("nbgrader", {}).get("grade"):
            score_on_errors(result[0])
        self._last_done = index
        return result

    def _in_kernel(self, code: str, index: int) -> list[Any]:
        """Execute ``code`` in the kernel as a throwaway cell; return its outputs."""
        real = self.nb.cells[index]
        probe_cell = NotebookNode(cell_type="code", source=code, metadata=NotebookNode(), outputs=[], execution_count=None)
        try:
            self.execute_cell(probe_cell, index, store_history=False)
        finally:
            self.nb.cells[index] = real
        return list(probe_cell.outputs)

    def _remote_check(self, assignment: str, name: str, index: int, grade_id: str | None = None) -> str | None:
        """Run hidden test ``name`` here against the kernel (and the grader's own check of the
        visible test ``grade_id``, :func:`.checks.hidden.run_check`); the failure message or None."""
        if assignment not in self._hidden_modules:
            self._hidden_modules[assignment] = load_hidden_tests(assignment)
        try:
            run_check(self._hidden_modules[assignment], name, RemoteProbe(lambda code: self._in_kernel(code, index)), cell=grade_id)
        except HiddenTestError as err:
            return str(err)
        except DeadKernelError:
            raise
        except Exception as err:  # noqa: BLE001 (a grading bug must not cost the other cells)
            self.log.error("hidden test %s/%s failed inside the grader: %r", assignment, name, err)
            return f"the grader could not run this test ({type(err).__name__}); your instructor has the log."
        return None


def _describe(err: BaseException) -> str:
    name = type(err).__name__
    if name == "DeadKernelError":
        return "the kernel died (the code exited, crashed or exceeded the memory or CPU limit)"
    if "Timeout" in name or "Unresponsive" in name:
        return "the kernel stopped responding (time limit)"
    return f"{name}: {str(err).strip().splitlines()[0][:300] if str(err).strip() else ''}"
