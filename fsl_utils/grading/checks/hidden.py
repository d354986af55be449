"""Run one hidden test of an assignment from a notebook's hidden test cell.

A hidden test cell of ``solutions/<assignment>/<name>.ipynb`` holds only::

    ### BEGIN HIDDEN TESTS
    from fsl_utils.grading import run_hidden_test
    run_hidden_test("protonet", "prototypes", globals())
    ### END HIDDEN TESTS

The checks themselves live in ``solutions/<assignment>/hidden_tests.py`` (excluded from
the release by ``nbgrader_config.py``), a module with a dict ``TESTS`` mapping test
names to functions ``check(probe)`` that raise ``AssertionError`` with a message for the
student. Failures surface as :class:`HiddenTestError` carrying only that message and the
student's own frames, so feedback never shows the hidden code. The module may also define
``prepare()`` (run by the grader before autograding, :func:`fsl_utils.grading.pipeline.prepare`) and
``FORBIDDEN``, the assignment's own code students must not run from graded functions
(:func:`forbidden_extra`).

A check asks a probe (:mod:`.probe`) for data: the student's functions called on arrays, or a
kernel-side task of the assignment (:mod:`.kernel`). Run in the notebook (nbval, the
instructor), a check and the student's code share the kernel (:class:`~.probe.LocalProbe`). While autograding, the grader runs the check in its
own process against the sandboxed kernel (:mod:`.remote`); ``hidden_tests.py`` never
enters the student's kernel.
"""

from __future__ import annotations

import importlib.util
import os
import types
import warnings
from collections.abc import Mapping
from typing import Any

from ..paths import hidden_tests_file
from .probe import LocalProbe, Probe
from .protocol import KernelError, NoAnswer, student_frames


class HiddenTestError(AssertionError):
    """A hidden test failed; the message says what is wrong (never how it was tested)."""


def load_hidden_tests(assignment: str, root: str | os.PathLike[str] | None = None) -> types.ModuleType:
    """Import ``solutions/<assignment>/hidden_tests.py`` under a private module name."""
    path = hidden_tests_file(assignment, root)
    if not path.is_file():
        raise FileNotFoundError(f"hidden tests of assignment {assignment!r} not found at {path}")
    spec = importlib.util.spec_from_file_location(f"_fsl_hidden_{assignment}", path)
    module = importlib.util.module_from_spec(spec)  # not registered in sys.modules
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def forbidden_extra(module: types.ModuleType) -> tuple[str, ...]:
    """The assignment's own forbidden code: ``FORBIDDEN`` of its ``hidden_tests.py``, a tuple of
    dotted package/module names or ``"module:function"`` entries, forbidden in addition to
    :data:`~.plain.FORBIDDEN_PACKAGES` while its checks' calls run (default: none)."""
    extra = getattr(module, "FORBIDDEN", ())
    if isinstance(extra, str) or not all(isinstance(p, str) and p for p in extra):
        raise TypeError(f"FORBIDDEN of {getattr(module, '__file__', module)} must be a tuple of module names or 'module:function', got {extra!r}")
    return tuple(extra)


def run_check(module: types.ModuleType, name: str, probe: Probe, cell: str | None = None) -> None:
    """Run check ``name`` of a hidden-tests ``module`` against ``probe``.

    The same for both probes: a :class:`~.probe.LocalProbe` (the check and the student's
    code share this process) and a :class:`~.remote.RemoteProbe` (the check runs in the
    grader, the student's code in its kernel).

    ``cell`` is the grade id of the test cell (given while autograding): when the module's
    ``VISIBLE`` dict has a check for it, that check runs too — the grader's own run of a
    visible test's examples, compared in the grader, so that replacing comparison functions
    in the kernel cannot pass the visible test (the kernel only supplies values).

    Code of :data:`~.plain.FORBIDDEN_PACKAGES` and of the module's own ``FORBIDDEN``
    (:func:`forbidden_extra`) that runs during the check's calls counts as borrowed.

    Raises:
        HiddenTestError: the test failed, the environment was tampered with, the
            student's code raised (message with the student's own lines) or did not
            answer, or it borrowed a forbidden implementation.
    """
    altered = probe.tampering()
    if altered:
        raise HiddenTestError(
            "The test environment was modified (" + ", ".join(altered) + "). Remove the code that replaces these "
            "functions; tests cannot pass while it runs."
        )
    extra = forbidden_extra(module)
    if extra:
        probe.forbid(extra)
    checks = [module.TESTS[name]]
    visible = getattr(module, "VISIBLE", {}).get(cell) if cell else None
    if visible is not None:
        checks.append(visible)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for check in checks:
                check(probe)
    except AssertionError as err:
        raise HiddenTestError(str(err)) from None
    except KernelError as err:
        raise HiddenTestError(f"your code raised {err.type_name}: {err.message}" + (f"\n{err.where}" if err.where else "")) from None
    except NoAnswer as err:
        raise HiddenTestError(str(err)) from None
    except Exception as err:
        if getattr(probe, "remote", False):
            raise  # the grader's own failure (e.g. the kernel died): not the student's message
        where = student_frames(err, exclude=(str(module.__file__),))
        raise HiddenTestError(f"your code raised {type(err).__name__}: {err}" + (f"\n{where}" if where else "")) from None
    borrowed = probe.borrowed()
    if borrowed:
        raise HiddenTestError(
            "this task must be solved with your own code, but it ran the course's reference implementation ("
            + ", ".join(borrowed) + "); write it yourself with torch operations."
        )


def run_hidden_test(assignment: str, name: str, namespace: Mapping[str, Any], root: str | os.PathLike[str] | None = None) -> None:
    """Run hidden test ``name`` of ``assignment`` against the notebook's ``namespace``, in
    this process (how the source notebook runs; autograding runs the same check in the
    grader through :mod:`.remote` instead).

    Raises:
        HiddenTestError: see :func:`run_check`.
    """
    run_check(load_hidden_tests(assignment, root), name, LocalProbe(namespace))
