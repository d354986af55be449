"""Autograding support for the course's nbgrader assignments.

* :func:`run_hidden_test` — what a hidden test cell of a source notebook calls: it loads
  ``solutions/<assignment>/hidden_tests.py`` (instructors only, never released) and runs
  one named check against the student's namespace through a :class:`LocalProbe`.
* :mod:`.execute` and :mod:`.remote` — while autograding, the same checks run in the
  grader's process against the student's kernel, which runs under bubblewrap (:mod:`.sandbox`)
  without the course's forbidden code (:mod:`.stubs`); submissions are taken in as data
  (:mod:`.intake`) and sanitised before anyone views them (:mod:`.sanitize`).
* :mod:`.notebook` — read code out of notebooks (the bench imports the reference
  solution this way) and compare releases.
* :mod:`.pipeline` — ``python -m fsl_utils.grading`` (``make release``, ``make grade``):
  autograde every submission (:mod:`.batch`), generate feedback (:mod:`.feedback`),
  export ``grading/grades.csv``.
"""

from __future__ import annotations

from .hidden import HiddenTestError, course_root, load_hidden_tests, run_check, run_hidden_test
from .probe import LocalProbe, Probe

__all__ = ["HiddenTestError", "LocalProbe", "Probe", "course_root", "load_hidden_tests", "run_check", "run_hidden_test"]
