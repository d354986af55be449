"""The wire format between the grader and the student's kernel, and the errors it reports.

Requests and answers travel as JSON with numpy arrays as base64 ``.npy`` (read with
``allow_pickle=False``): nothing the kernel sends can execute code in the grader. Both sides
import this module; it imports nothing of the probes (:mod:`.probe`, :mod:`.remote`).
"""

from __future__ import annotations

import base64
import io
import json
import re
import traceback
import zlib
from typing import Any

import numpy as np

#: MIME type of the kernel's answers (a display output of the request cell).
MIME = "application/x-fsl-probe"
#: Largest answer the grader reads (characters of JSON).
MAX_ANSWER_CHARS = 64 * 2**20
_CELL_FILE = re.compile(r"ipykernel_\d+[/\\]\d+\.py$")


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


def student_frames(err: BaseException, exclude: tuple[str, ...] = ()) -> str:
    """The last three frames of ``err`` that run the student's code, formatted for feedback.

    Frames of the grading package (its kernel-side tasks included), of the grader's helpers and
    of the files in ``exclude`` (the hidden tests) are dropped; a notebook cell's temporary file
    is named "<notebook cell>".
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
