"""Has code in this process replaced the functions that tests compare or report with?

Run in the student's kernel before every hidden test (:meth:`.probe.LocalProbe.tampering`): a
visible test that runs in the kernel cannot be trusted once ``torch.allclose`` or IPython's
``showtraceback`` has been replaced, so :func:`.hidden.run_check` fails the test instead.
"""

from __future__ import annotations

import builtins
import os
from typing import Any

import numpy as np
import torch

_BUILTIN_FUNCTION = type(len)
_CRITICAL_BUILTINS = ("abs", "all", "any", "float", "int", "isinstance", "len", "max", "min", "range", "round", "sum", "type", "zip")


def _genuine(obj: Any, package_dir: str) -> bool:
    """Whether ``obj`` is a builtin or a function whose code lives in ``package_dir``."""
    if isinstance(obj, _BUILTIN_FUNCTION):
        return True
    code = getattr(getattr(obj, "__wrapped__", obj), "__code__", None) or getattr(obj, "__code__", None)
    return code is not None and code.co_filename.startswith(package_dir)


def tampering() -> list[str]:
    """Names of comparison and reporting functions that code in this process replaced.

    Checked: core builtins, ``torch.allclose``/``isclose``/``equal``/``testing.assert_close``,
    ``numpy.allclose``/``isclose``/``array_equal`` and ``numpy.testing`` asserts, and
    IPython's ``showtraceback``.
    """
    found = [f"builtins.{n}" for n in _CRITICAL_BUILTINS if not isinstance(getattr(builtins, n, None), (_BUILTIN_FUNCTION, type))]
    torch_dir, numpy_dir = os.path.dirname(torch.__file__), os.path.dirname(np.__file__)
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
    found += [name for name, (obj, where) in checks.items() if not _genuine(obj, where)]
    shell = getattr(builtins, "get_ipython", lambda: None)()
    if shell is not None:
        for attr in ("showtraceback", "_showtraceback", "run_cell", "run_code"):
            value = vars(shell).get(attr)  # an instance attribute shadows the class's method
            if value is not None and getattr(value, "__func__", None) is not getattr(type(shell), attr, None):
                found.append(f"IPython shell.{attr}")
    return found
