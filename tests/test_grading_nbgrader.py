"""What fsl_utils.grading relies on in nbgrader, nbconvert, nbclient and jupyter_client, checked
directly, so that an upgrade that changes it fails here with the place to look instead of
grading wrongly. Tested with nbgrader 0.9.5 and 0.9.6 (pyproject.toml bounds it to those)."""

from __future__ import annotations

import inspect
import os

import nbgrader
import pytest
from nbformat.notebooknode import NotebookNode

TESTED_NBGRADER = ("0.9.5", "0.9.6")


def test_nbgrader_is_a_tested_version():
    assert nbgrader.__version__ in TESTED_NBGRADER, (
        f"nbgrader {nbgrader.__version__} is not one of the versions the grading was tested with {TESTED_NBGRADER}: run the grading "
        "tests (tests/test_grading_*.py), check each item of this file, then add the version here and to pyproject.toml's bound")


def _grade_cell(*outputs: NotebookNode) -> NotebookNode:
    meta = NotebookNode(nbgrader=NotebookNode(grade=True, solution=False, grade_id="t", points=3.0))
    return NotebookNode(cell_type="code", metadata=meta, source="", outputs=list(outputs))


def test_scores_come_from_determine_grade_as_fsl_utils_execute_expects():
    """fsl_utils.grading.execute.score_on_errors exists because nbgrader fails a test cell on any stderr
    output and reads an execute_result as partial credit; if nbgrader stops doing either, revisit it."""
    from nbgrader.preprocessors import SaveAutoGrades
    from nbgrader.utils import determine_grade

    assert determine_grade(_grade_cell(NotebookNode(output_type="stream", name="stderr", text="warn"))) == (0, 3.0)
    assert determine_grade(_grade_cell(NotebookNode(output_type="execute_result", data={"text/plain": "1"}, metadata={}))) == (1.0, 3.0)
    assert determine_grade(_grade_cell(NotebookNode(output_type="stream", name="stdout", text="ok"))) == (3.0, 3.0)
    assert "determine_grade" in inspect.getsource(SaveAutoGrades)


def test_restore_cells_hooks_exist():
    """fsl_utils.grading.restore.RestoreCells overrides OverwriteCells.preprocess_cell and report_change and
    uses ClearHiddenTests through its public preprocess_cell (tests/test_grading_restore.py runs them)."""
    from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells

    assert "report_change" in vars(OverwriteCells) and "preprocess_cell" in vars(OverwriteCells)
    assert list(inspect.signature(OverwriteCells.report_change).parameters) == ["self", "name", "attr", "old", "new"]
    assert "self.report_change(" in inspect.getsource(OverwriteCells.preprocess_cell)
    from fsl_utils.grading.restore import RestoreCells

    source = "x = 1\n### BEGIN HIDDEN TESTS\nsecret()\n### END HIDDEN TESTS\nprint(x)"
    assert RestoreCells().released_source(source) == "x = 1\nprint(x)"
    assert ClearHiddenTests().begin_test_delimeter == "BEGIN HIDDEN TESTS"


def test_safe_execute_hooks_exist():
    """fsl_utils.grading.execute.SafeExecute calls nbclient's execute_cell for its probe cells and overrides
    preprocess/preprocess_cell of nbgrader's Execute, which records errors from the reply status."""
    from nbclient import NotebookClient
    from nbgrader.preprocessors import Execute

    params = inspect.signature(NotebookClient.async_execute_cell).parameters  # (execute_cell is its synchronous wrapper)
    assert list(params)[:4] == ["self", "cell", "cell_index", "execution_count"] and "store_history" in params
    assert issubclass(Execute, NotebookClient) and "on_cell_executed" in vars(Execute)
    assert Execute.interrupt_on_timeout.default_value is True


def test_an_absolute_submitted_directory_is_used_as_is(tmp_path):
    """The batch points nbgrader's submitted_directory at the intake copy (fsl_utils.grading.sandbox.intake)."""
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(root=str(tmp_path / "course"), submitted_directory=str(tmp_path / "intake"))
    assert coursedir.format_path(coursedir.submitted_directory, "s", "a") == os.path.join(str(tmp_path / "intake"), "s", "a")


def test_the_renderer_options_the_course_sets_exist():
    from nbconvert import HTMLExporter

    assert "sanitize_html" in HTMLExporter.class_trait_names() and "filters" in HTMLExporter.class_trait_names()
    assert HTMLExporter().mathjax_url.endswith(",Safe"), "MathJax's Safe extension (no \\href{javascript:...}) is expected"


def test_kernels_can_be_interrupted_by_message():
    """The sandboxed kernel runs in a session of its own: interrupts are messages (kernelspec interrupt_mode)."""
    from jupyter_client.kernelspec import KernelSpec

    assert KernelSpec(interrupt_mode="message").interrupt_mode == "message"
    from ipykernel.kernelbase import Kernel

    assert "interrupt_request" in Kernel.control_msg_types


@pytest.mark.parametrize("name", ["formgrade", "feedback"])
def test_nbgrader_templates_do_not_clean_markdown(name):
    """Why the autograded notebook itself is sanitised (fsl_utils.grading.sanitize): nbgrader's own
    templates render markdown cells without nbconvert's clean_html. If they start cleaning, the on-disk
    step stays as a second layer."""
    from pathlib import Path

    from nbgrader.server_extensions.formgrader import handlers

    text = (Path(handlers.template_path) / name / "index.html.j2").read_text()
    assert "cell.source  | markdown2html | strip_files_prefix }}" in text
