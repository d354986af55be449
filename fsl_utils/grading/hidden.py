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
``prepare()`` (run by the grader before autograding, :func:`.pipeline.prepare`) and
``FORBIDDEN``, the assignment's own code students must not run from graded functions
(:func:`forbidden_extra`).

Run in the notebook (nbval, the instructor), a check and the student's code share the
kernel (:class:`~.probe.LocalProbe`). While autograding, the grader runs the check in its
own process against the sandboxed kernel (:mod:`.remote`); ``hidden_tests.py`` never
enters the student's kernel.
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import types
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .probe import LocalProbe, Probe

_BUILTIN_FUNCTION = type(len)
_CRITICAL_BUILTINS = ("abs", "all", "any", "float", "int", "isinstance", "len", "max", "min", "range", "round", "sum", "type", "zip")


class HiddenTestError(AssertionError):
    """A hidden test failed; the message says what is wrong (never how it was tested)."""


def course_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nbgrader course directory: ``$FSL_COURSE_ROOT``, else the nearest folder at or
    above ``start`` (default: the current folder) holding ``nbgrader_config.py`` and
    ``solutions/``.

    Raises:
        FileNotFoundError: none found (e.g. in a student's copy, which has no solutions).
    """
    env = os.environ.get("FSL_COURSE_ROOT")
    if env:
        return Path(env)
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "solutions").is_dir():
            return folder
    raise FileNotFoundError(
        f"No course directory (with nbgrader_config.py and solutions/) at or above {here}; hidden tests run only "
        "when grading (set FSL_COURSE_ROOT to the course checkout)."
    )


def load_hidden_tests(assignment: str, root: str | os.PathLike[str] | None = None) -> types.ModuleType:
    """Import ``solutions/<assignment>/hidden_tests.py`` under a private module name."""
    path = Path(root) if root is not None else course_root()
    path = path / "solutions" / assignment / "hidden_tests.py"
    if not path.is_file():
        raise FileNotFoundError(f"hidden tests of assignment {assignment!r} not found at {path}")
    spec = importlib.util.spec_from_file_location(f"_fsl_hidden_{assignment}", path)
    module = importlib.util.module_from_spec(spec)  # not registered in sys.modules
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def tampering() -> list[str]:
    """Names of comparison and reporting functions that code in this process replaced.

    Checked: core builtins, ``torch.allclose``/``isclose``/``equal``/``testing.assert_close``,
    ``numpy.allclose``/``isclose``/``array_equal`` and ``numpy.testing`` asserts, and
    IPython's ``showtraceback``.
    """
    import numpy as np
    import torch

    found = [f"builtins.{n}" for n in _CRITICAL_BUILTINS if not isinstance(getattr(builtins, n, None), (_BUILTIN_FUNCTION, type))]
    torch_dir, numpy_dir = os.path.dirname(torch.__file__), os.path.dirname(np.__file__)

    def genuine(obj: Any, package_dir: str) -> bool:
        if isinstance(obj, _BUILTIN_FUNCTION):
            return True
        code = getattr(getattr(obj, "__wrapped__", obj), "__code__", None) or getattr(obj, "__code__", None)
        return code is not None and code.co_filename.startswith(package_dir)

    checks = {
        "torch.allclose": (torch.allclose, torch_dir),
        "torch.isclose": (torch.isclose, torch_dir),
        "torch.equal": (torch.equal, torch_dir),
        "torch.testing.assert_close": (torch.testing.assert_close, torch_dir),
        "numpy.allclose": (np.allclose, numpy_dir),
        "numpy.isclose": (np.isclose, numpy_dir),
        "numpy.array_equal": (np.array_equal, numpy_dir),
        "numpy.testing.assert_allclose": (np.testing.assert_allclose, numpy_dir),
        "numpy.testing.assert_array_equal": (np.testing.assert_array_equal, numpy_dir),
        "numpy.testing.assert_array_almost_equal": (np.testing.assert_array_almost_equal, numpy_dir),
    }
    found += [name for name, (obj, where) in checks.items() if not genuine(obj, where)]
    shell = getattr(builtins, "get_ipython", lambda: None)()
    if shell is not None:
        for attr in ("showtraceback", "_showtraceback", "run_cell", "run_code"):
            value = vars(shell).get(attr)  # an instance attribute shadows the class's method
            if value is not None and getattr(value, "__func__", None) is not getattr(type(shell), attr, None):
                found.append(f"IPython shell.{attr}")
    return found


def forbidden_extra(module: types.ModuleType) -> tuple[str, ...]:
    """The assignment's own forbidden code: ``FORBIDDEN`` of its ``hidden_tests.py``, a tuple of
    dotted package/module names or ``"module:function"`` entries, forbidden in addition to
    :data:`~.probe_utils.FORBIDDEN_PACKAGES` while its checks' calls run (default: none)."""
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

    Code of :data:`~.probe_utils.FORBIDDEN_PACKAGES` and of the module's own ``FORBIDDEN``
    (:func:`forbidden_extra`) that runs during the check's calls counts as borrowed.

    Raises:
        HiddenTestError: the test failed, the environment was tampered with, the
            student's code raised (message with the student's own lines) or did not
            answer, or it borrowed a forbidden implementation.
    """
    from .remote import KernelError, NoAnswer, student_frames

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
