"""Hidden tests in the grader's process, student code in the student's kernel.

While autograding, :class:`~fsl_utils.grading.execute.SafeExecute` does not send a hidden test
cell's hidden region to the kernel. It runs the named check of ``solutions/<assignment>/hidden_tests.py``
itself, with a :class:`RemoteProbe`: every question the check asks (call this function on these
arrays, run this kernel-side task, ...) becomes a tiny request cell executed in the kernel, where
:func:`serve` answers it with a :class:`~.probe.LocalProbe` and sends the answer back as a display
output of type :data:`~.protocol.MIME`. The kernel only ever sees inputs, the names of kernel-side
tasks (real modules, :mod:`.kernel`) and reference helpers, never the checks, their oracles or
thresholds, so a submission can neither read the hidden tests nor fool their comparisons. The wire
format is :mod:`.protocol`.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from IPython.display import display

from .probe import LocalProbe
from .protocol import MAX_ANSWER_CHARS, MIME, KernelError, NoAnswer, pack, student_frames, unpack

#: The probe methods a request may name.
METHODS = ("has", "call", "task", "file_info", "source", "borrowed", "forbid", "tampering")
_SESSIONS: dict[str, LocalProbe] = {}


def _display(data: dict[str, str]) -> None:
    display(data, raw=True)


def serve(namespace: dict[str, Any], request: str, emit: Callable[[dict[str, str]], None] | None = None) -> None:
    """Kernel side: answer one probe request; the answer is displayed with type :data:`~.protocol.MIME`.

    Args:
        namespace: the notebook's globals.
        request: :func:`~.protocol.pack` of ``{"session", "method", "args", "kwargs"}``.
        emit: receives ``{MIME: answer}`` (default: IPython's ``display(..., raw=True)``).
    """
    emit = emit or _display
    req = unpack(request)
    if req["method"] not in METHODS:
        raise ValueError(f"unknown probe method {req['method']!r}")
    probe = _SESSIONS.setdefault(req["session"], LocalProbe(namespace))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            answer = {"ok": getattr(probe, req["method"])(*req["args"], **req["kwargs"])}
    except KeyboardInterrupt:  # the grader interrupts a request at its time limit
        answer = {"error": {"type": "TimeoutError", "message": "it did not finish within the time limit and was interrupted", "where": ""}}
    except BaseException as err:  # noqa: BLE001 (student code: SystemExit and anything else)
        answer = {"error": {"type": type(err).__name__, "message": str(err)[:2000], "where": student_frames(err)}}
    emit({MIME: pack(answer)})


class RemoteProbe:
    """Grader side: the :class:`~.probe.Probe` API, answered by the student's kernel.

    Args:
        execute: runs code in the kernel and returns the cell's outputs (nbformat dicts).
    """

    remote = True  # errors that are not the student's propagate (see hidden.run_check)

    def __init__(self, execute: Callable[[str], list[Any]]) -> None:
        self._execute = execute
        self._session = uuid.uuid4().hex

    def _request(self, method: str, *args: Any, **kwargs: Any) -> Any:
        request = pack({"session": self._session, "method": method, "args": list(args), "kwargs": kwargs})
        code = f"__import__('{__name__}', fromlist=['serve']).serve(globals(), {request!r})"
        outputs = self._execute(code)
        answers = [o["data"][MIME] for o in outputs if o.get("output_type") == "display_data" and MIME in o.get("data", {})]
        if not answers:
            errors = [f"{o.get('ename')}: {o.get('evalue')}" for o in outputs if o.get("output_type") == "error"]
            if any("Timeout" in e for e in errors):
                raise NoAnswer("your code did not finish within the time limit")
            raise NoAnswer("your code did not return" + (f" ({errors[-1][:300]})" if errors else " (no answer from the kernel)"))
        text = answers[-1] if isinstance(answers[-1], str) else "".join(answers[-1])
        if len(text) > MAX_ANSWER_CHARS:
            raise NoAnswer("the answer of your code was too large")
        try:
            answer = unpack(text)
        except (ValueError, KeyError, TypeError) as err:
            raise NoAnswer(f"the kernel's answer could not be read ({type(err).__name__})") from None
        if not isinstance(answer, dict) or not ("ok" in answer or "error" in answer):
            raise NoAnswer("the kernel's answer could not be read")
        if "error" in answer:
            e = answer["error"]
            raise KernelError(str(e.get("type")), str(e.get("message")), str(e.get("where") or ""))
        return answer["ok"]

    def has(self, name: str) -> bool:
        """Whether the student's namespace defines ``name``."""
        return bool(self._request("has", name))

    def call(self, name: str, *args: Any, grad_weights: np.ndarray | None = None, substitutes: str | None = None) -> dict[str, Any]:
        """:meth:`.probe.LocalProbe.call`, in the kernel."""
        return self._request("call", name, *args, grad_weights=grad_weights, substitutes=substitutes)

    def task(self, assignment: str, name: str, *args: Any, substitutes: str | None = None) -> Any:
        """:meth:`.probe.LocalProbe.task`, in the kernel (the answer is untrusted plain data)."""
        return self._request("task", assignment, name, *args, substitutes=substitutes)

    def file_info(self, filename: str) -> dict[str, Any]:
        """``{"exists", "size"}`` of a file beside the notebook."""
        return self._request("file_info", filename)

    def source(self, name: str) -> str | None:
        """Source code of the student's ``name`` (None if unavailable)."""
        out = self._request("source", name)
        return out if isinstance(out, str) else None

    def borrowed(self) -> list[str]:
        """Forbidden files whose code ran in the kernel during this session's requests."""
        return [str(x) for x in self._request("borrowed")]

    def forbid(self, packages: Sequence[str]) -> None:
        """Forbid ``packages`` too in this session's next requests."""
        self._request("forbid", [str(p) for p in packages])

    def tampering(self) -> list[str]:
        """Comparison/reporting functions replaced in the kernel."""
        return [str(x) for x in self._request("tampering")]
