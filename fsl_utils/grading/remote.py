"""Hidden tests in the grader's process, student code in the student's kernel.

While autograding, :class:`~.execute.SafeExecute` does not send a hidden test cell's hidden
region to the kernel. It runs the named check of ``solutions/<assignment>/hidden_tests.py``
itself, with a :class:`RemoteProbe`: every question the check asks (call this function on
these arrays, embed these images with the submitted weights, ...) becomes a tiny request
cell executed in the kernel, where :func:`serve` answers it with a :class:`~.probe.LocalProbe`
and sends the answer back as a display output of type :data:`MIME`. The kernel only ever
sees inputs and reference helpers, never the checks, their oracles or thresholds, so a
submission can neither read the hidden tests nor fool their comparisons.

Answers travel as JSON with numpy arrays as base64 ``.npy`` (read with
``allow_pickle=False``): nothing the kernel sends can execute code in the grader.
"""

from __future__ import annotations

import base64
import io
import json
import re
import traceback
import uuid
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

MIME = "application/x-fsl-probe"
MAX_ANSWER_CHARS = 64 * 2**20
METHODS = ("has", "call", "encoder_report", "loss_probe", "file_info", "embed_with_weights", "source", "borrowed", "forbid", "tampering")
_SESSIONS: dict[str, Any] = {}


class KernelError(Exception):
    """The student's code raised while answering a probe (type, message and its own lines)."""

    def __init__(self, type_name: str, message: str, where: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message, self.where = type_name, message, where


class NoAnswer(Exception):
    """The kernel gave no answer (time limit, interrupted, output replaced, ...)."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(obj), allow_pickle=False)
        return {"__ndarray__": base64.b64encode(zlib.compress(buffer.getvalue(), 1)).decode("ascii")}
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    return obj


def _inflate(data: bytes, limit: int = 256 * 2**20) -> bytes:
    """zlib-decompress at most ``limit`` bytes (a hostile kernel could send a zip bomb)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, limit)
    if inflater.unconsumed_tail:
        raise ValueError("array too large")
    return out


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return np.load(io.BytesIO(_inflate(base64.b64decode(obj["__ndarray__"]))), allow_pickle=False)
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def pack(obj: Any) -> str:
    """JSON text of ``obj`` (dicts, lists, numbers, strings, None, numpy arrays)."""
    return json.dumps(_encode(obj), allow_nan=True)


def unpack(text: str) -> Any:
    """Inverse of :func:`pack`; never unpickles."""
    return _decode(json.loads(text))


_CELL_FILE = re.compile(r"ipykernel_\d+[/\\]\d+\.py$")


def student_frames(err: BaseException, exclude: tuple[str, ...] = ()) -> str:
    """The last three frames of ``err`` that run the student's code, formatted for feedback.

    Frames of the grading package, of the grader's helpers and of the files in ``exclude``
    (the hidden tests) are dropped; a notebook cell's temporary file is named "<notebook cell>".
    """
    frames = []
    for f in traceback.extract_tb(err.__traceback__):
        name = f.filename.replace("\\", "/")
        if "fsl_utils/grading" in name or f.filename in exclude or f.filename == "<grader helpers>":
            continue
        if _CELL_FILE.search(name):
            f.filename = "<notebook cell>"
        frames.append(f)
    return "".join(traceback.format_list(frames[-3:]))


def serve(namespace: dict[str, Any], request: str, emit: Callable[[dict[str, str]], None] | None = None) -> None:
    """Kernel side: answer one probe request; the answer is displayed with type :data:`MIME`.

    Args:
        namespace: the notebook's globals.
        request: :func:`pack` of ``{"session", "method", "args", "kwargs"}``.
        emit: receives ``{MIME: answer}`` (default: IPython's ``display(..., raw=True)``).
    """
    from .probe import LocalProbe

    if emit is None:
        from IPython.display import display

        def emit(data: dict[str, str]) -> None:
            display(data, raw=True)

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
        code = f"__import__('fsl_utils.grading.remote', fromlist=['serve']).serve(globals(), {request!r})"
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
        return bool(self._request("has", name))

    def call(self, name: str, *args: Any, grad_weights: np.ndarray | None = None, substitutes: str | None = None) -> dict[str, Any]:
        return self._request("call", name, *args, grad_weights=grad_weights, substitutes=substitutes)

    def encoder_report(self, name: str, x: np.ndarray) -> dict[str, Any]:
        return self._request("encoder_report", name, x)

    def loss_probe(self, name: str, weight: np.ndarray, bias: np.ndarray, episode: dict[str, np.ndarray], substitutes: str | None = None) -> dict[str, Any]:
        return self._request("loss_probe", name, weight, bias, episode, substitutes=substitutes)

    def file_info(self, filename: str) -> dict[str, Any]:
        return self._request("file_info", filename)

    def embed_with_weights(self, name: str, filename: str, images: np.ndarray) -> np.ndarray:
        out = self._request("embed_with_weights", name, filename, images)
        if not isinstance(out, np.ndarray):
            raise KernelError("TypeError", f"`{name}` did not return embeddings")
        return out

    def source(self, name: str) -> str | None:
        out = self._request("source", name)
        return out if isinstance(out, str) else None

    def borrowed(self) -> list[str]:
        return [str(x) for x in self._request("borrowed")]

    def forbid(self, packages: Sequence[str]) -> None:
        self._request("forbid", [str(p) for p in packages])

    def tampering(self) -> list[str]:
        return [str(x) for x in self._request("tampering")]
