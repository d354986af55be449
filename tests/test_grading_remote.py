"""Hidden tests run in the grader against the student's kernel (fsl_utils.grading.checks.remote).

The kernel is simulated in-process here (the real one is exercised by the pipeline tests):
each request cell is parsed and answered by ``serve`` on a notebook namespace, so every
verdict of the remote path can be compared with the local one.
"""

from __future__ import annotations

import ast

import numpy as np
import pytest

from fsl_utils.grading import HiddenTestError, LocalProbe
from fsl_utils.grading.execute import hidden_calls
from fsl_utils.grading.checks.hidden import run_check
from fsl_utils.grading.checks.protocol import MIME, KernelError, NoAnswer, pack, unpack
from fsl_utils.grading.checks.remote import RemoteProbe, serve
from grading.hidden import CODE_TESTS, HIDDEN, MESSAGES, SSL_FORBIDDEN, forbidding_module, namespace, run_cell, ssl_namespace


def fake_kernel(ns: dict):
    """``execute(code)`` for RemoteProbe: answers request cells with ``serve`` on ``ns``."""

    def execute(code: str) -> list[dict]:
        call = ast.parse(code).body[0].value
        assert isinstance(call, ast.Call) and call.func.attr == "serve"
        outputs: list[dict] = []
        serve(ns, call.args[1].value, emit=lambda data: outputs.append({"output_type": "display_data", "data": data}))
        return outputs

    return execute


def test_pack_roundtrip_never_pickles():
    value = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [1, 2.5, None, "x"], "c": {"d": np.zeros(0, np.int64)}}
    back = unpack(pack(value))
    assert np.array_equal(back["a"], value["a"]) and back["a"].dtype == np.float32
    assert back["b"] == [1, 2.5, None, "x"] and back["c"]["d"].shape == (0,)
    with pytest.raises(ValueError):
        unpack(pack({"x": np.array([object()], dtype=object)}))


@pytest.mark.parametrize("test", CODE_TESTS)
def test_reference_passes_remotely(test):
    run_check(HIDDEN, test, RemoteProbe(fake_kernel(namespace())))


@pytest.mark.parametrize("mutant", sorted(MESSAGES))
def test_mistakes_fail_remotely_with_the_same_message(mutant):
    failing, message = MESSAGES[mutant]
    ns = namespace(mutant)
    with pytest.raises(HiddenTestError, match=message) as remote:
        run_check(HIDDEN, failing, RemoteProbe(fake_kernel(ns)))
    with pytest.raises(HiddenTestError) as local:
        run_check(HIDDEN, failing, LocalProbe(ns))
    assert str(remote.value) == str(local.value)


def test_student_exception_is_reported_with_its_own_lines():
    ns = namespace()
    run_cell("def compute_prototypes(embeddings, labels, n_way):\n    raise ValueError('oops')\n", ns)
    with pytest.raises(HiddenTestError, match="your code raised ValueError: oops") as info:
        run_check(HIDDEN, "prototypes", RemoteProbe(fake_kernel(ns)))
    assert "raise ValueError" in str(info.value) and "hidden_tests" not in str(info.value)


def test_borrowing_and_tampering_are_reported_remotely(monkeypatch):
    ns = namespace()
    exec("def compute_prototypes(embeddings, labels, n_way):\n    from easyfsl.methods.utils import compute_prototypes as cp\n    return cp(embeddings, labels)\n", ns)
    with pytest.raises(HiddenTestError, match="your own code"):
        run_check(HIDDEN, "prototypes", RemoteProbe(fake_kernel(ns)))
    import torch

    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    with pytest.raises(HiddenTestError, match="torch.allclose"):
        run_check(HIDDEN, "environment", RemoteProbe(fake_kernel(namespace())))


def test_forbidden_of_the_hidden_tests_reaches_the_kernel():
    """The grader sends the assignment's FORBIDDEN to the kernel's probe (one session per check)."""
    run_check(forbidding_module(None), "t", RemoteProbe(fake_kernel(ssl_namespace())))
    with pytest.raises(HiddenTestError, match="your own code.*losses.py"):
        run_check(forbidding_module(SSL_FORBIDDEN), "t", RemoteProbe(fake_kernel(ssl_namespace())))
    ns = ssl_namespace()
    ns["f"] = ns["h"]
    run_check(forbidding_module(SSL_FORBIDDEN), "t", RemoteProbe(fake_kernel(ns)))


def test_missing_or_garbled_answers_fail_the_test():
    with pytest.raises(NoAnswer, match="time limit"):
        RemoteProbe(lambda code: [{"output_type": "error", "ename": "CellTimeoutError", "evalue": ""}]).tampering()
    with pytest.raises(NoAnswer, match="NameError"):
        RemoteProbe(lambda code: [{"output_type": "error", "ename": "NameError", "evalue": "serve"}]).tampering()
    with pytest.raises(NoAnswer, match="could not be read"):
        RemoteProbe(lambda code: [{"output_type": "display_data", "data": {MIME: "{not json"}}]).tampering()
    with pytest.raises(KernelError, match="SystemExit"):
        RemoteProbe(lambda code: [{"output_type": "display_data", "data": {MIME: pack({"error": {"type": "SystemExit", "message": "0"}})}}]).has("x")


def test_hidden_calls_are_recognised():
    cell = 'x = 1\n### BEGIN HIDDEN TESTS\nfrom fsl_utils.grading import run_hidden_test\nrun_hidden_test("protonet", "loss", globals())\n### END HIDDEN TESTS\n'
    assert hidden_calls(cell) == [("protonet", "loss")]
    assert hidden_calls("assert True") is None
    assert hidden_calls(cell.replace("run_hidden_test(", "assert 1 == 1\nrun_hidden_test(")) is None  # other hidden code: kernel


def test_student_frames_name_the_cell_and_hide_grader_helpers():
    """Feedback shows where the student's code failed: the notebook cell and its line, not the
    kernel's temporary file names, and nothing of the grader's helpers."""
    from fsl_utils.grading.checks.protocol import student_frames

    student: dict = {}
    exec(compile("def answer():\n    raise ValueError('bad shape')\n", "/run/fsl-grading-x/s1/work/kernel-y/ipykernel_7/123.py", "exec"), student)
    helpers = {"answer": student["answer"]}
    exec(compile("def probe():\n    answer()\n", "<grader helpers>", "exec"), helpers)
    with pytest.raises(ValueError) as info:
        helpers["probe"]()
    where = student_frames(info.value)
    assert 'File "<notebook cell>", line 2, in answer' in where
    assert "grader helpers" not in where and "ipykernel_7" not in where and "fsl-grading" not in where
