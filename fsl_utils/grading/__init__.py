"""Autograding of the course's nbgrader assignments (instructors only: not in the student repository).

The package has three parts. :mod:`.checks` imports nothing of the other two; :mod:`.sandbox` reads
an assignment's forbidden code through :mod:`.checks`; the nbgrader integration uses both. No module
imports another inside a function to dodge an import cycle: there are none.

**nbgrader integration** (this folder; ``nbgrader_config.py`` and the Makefile name these modules)

* :mod:`.pipeline` — ``python -m fsl_utils.grading release|grade|feedback|roster|deadlines``
  (``make release``, ``make grade``, ...): the commands and their steps.
* :mod:`.autograde` — a batch: take submissions in, repair what stops nbgrader, autograde each
  in its own process (:mod:`.batch`, the forking server) and sandboxed kernel.
* :mod:`.execute` — the ``Execute`` preprocessor: scores on errors only, and runs a cell's
  ``run_hidden_test`` regions in the grader against the kernel (:mod:`.checks`).
* :mod:`.restore` (grade cells restored from the gradebook), :mod:`.feedback` (feedback without
  hidden tests), :mod:`.sanitize` (a submission's HTML rendered inert), :mod:`.release` (what is
  never released; the manifest), :mod:`.late` (late penalties, LMS file names), :mod:`.roster`
  (roster and due dates), :mod:`.incremental` (which submissions changed), :mod:`.command`
  (the nbgrader command line).
* Shared: :mod:`.paths` (the course directory, an assignment's ``hidden_tests.py``),
  :mod:`.hidden_regions` (``### BEGIN/END HIDDEN TESTS``), :mod:`.notebook` (code read out of
  notebooks; the bench imports the reference solution this way).

**checks run in the grader** (:mod:`.checks`)

* :mod:`.checks.hidden` — :func:`run_hidden_test` (what a hidden test cell calls) and
  :func:`run_check`: one named check of ``solutions/<assignment>/hidden_tests.py`` (never
  released, never in the kernel) against a probe.
* :mod:`.checks.probe` — the one probe mechanism: :class:`LocalProbe` calls a student function on
  arrays or runs a kernel-side task; :mod:`.checks.remote` — :class:`~.checks.remote.RemoteProbe`
  asks the sandboxed kernel, whose ``serve`` answers with a :class:`LocalProbe`; :mod:`.checks.protocol`
  (the wire format), :mod:`.checks.plain` (plain data), :mod:`.checks.tampering`.
* :mod:`.checks.kernel` — the kernel-side tasks, one module per assignment (plumbing only: no
  hidden inputs, expected values or reference code, as they are readable inside the sandbox).

**sandbox** (:mod:`.sandbox`): every kernel under bubblewrap (:mod:`.sandbox.bwrap`), the batch's
isolation and preflight (:mod:`.sandbox.isolation`), submissions taken in as data
(:mod:`.sandbox.intake`), the course's forbidden code replaced by stubs (:mod:`.sandbox.stubs`).
"""

from __future__ import annotations

from .checks.hidden import HiddenTestError, load_hidden_tests, run_check, run_hidden_test
from .checks.probe import LocalProbe, Probe
from .paths import course_root

__all__ = ["HiddenTestError", "LocalProbe", "Probe", "course_root", "load_hidden_tests", "run_check", "run_hidden_test"]
