"""The session's three grading batches, graded in a background process while the other tests run.

A batch is one sandboxed ``make grade`` run over every submission of an assignment's grading
tests (protonet: tests/grading/course.py, 49 submissions; maml and simclr:
:func:`grading.assignment.graded_course`); together they are about a third of the test
session's CPU time. tests/conftest.py starts them when the session's first test runs and
orders the tests that read a batch after all the others, so the grading fills the core the
notebooks and unit tests leave idle. Each batch runs in its own process
(``python -m grading.background <name> <root> <result.json>``): grading sets environment
variables (``FSL_CELL_TIMEOUT``, the course's data folder, a secret the kernels must not see)
that must not reach the tests running meanwhile, and the grader's own process is what the
hostile submissions try to signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: fixture name -> assignment, in the order the batches are graded (the tests that read them run
#: in the same order, so the first batch's tests can start while the later ones are graded).
#: protonet first: about 170 s of tests read it (the adversarial cases, the formgrader in Chromium,
#: the term). Graded last, they ran after the whole chain, partly with one core idle (a clean-clone
#: CI run: the chain ended 1,185 s into make test, lane 1 170 s later, its last 80 s alone). The
#: tests that read the maml and simclr batches take seconds.
BATCHES = {"graded_course": "protonet", "graded_simclr": "simclr", "graded_maml": "maml"}
TESTS = Path(__file__).resolve().parents[1]
#: A batch that takes longer than this (a hang in the grader itself) fails its tests.
TIMEOUT = 3600


def grade(assignment: str, root: Path) -> dict[str, Any]:
    """Build and grade ``assignment``'s batch in ``root`` (in this process); what its fixture returns."""
    if assignment == "protonet":
        from grading import course

        result = course.build_and_grade(root, int(os.environ["FSL_TEST_PORT"]), int(os.environ["FSL_TEST_VIEW_PORT"]))
    else:
        from grading import assignment as shared
        from grading import maml, simclr

        module = {"maml": maml, "simclr": simclr}[assignment]
        result = shared.graded_course(root, module.ASSIGNMENT, module.submissions)
    return result


class Batches:
    """The batches ``names`` (fixture names of :data:`BATCHES`), graded one after the other in a
    background thread that runs each in its own process; :meth:`result` waits for one."""

    def __init__(self, names: Iterable[str], folder: Path) -> None:
        from grading.course import Listener

        self.names = [n for n in BATCHES if n in set(names)]
        self.folder = folder
        self.done = {name: threading.Event() for name in self.names}
        self.results: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.closed = False
        # The environment as the session started: the batches start later, from a thread, while a test
        # may have changed os.environ (tests/test_data_root.py deletes FSL_DATA_DIR with monkeypatch).
        self.environ = dict(os.environ)
        # The hosts' servers the protonet batch's hostile submissions try to reach: in this process,
        # so the tests read what reached them (the second stays open for the browser test).
        self.listener, self.view_listener = (Listener(), Listener()) if "graded_course" in self.names else (None, None)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for name in self.names:
            try:
                self.results[name] = self._grade(name)
            except Exception as error:  # reported by result() to the tests that read this batch
                self.errors[name] = str(error)
            finally:
                self.done[name].set()

    def _grade(self, name: str) -> dict[str, Any]:
        assignment = BATCHES[name]
        root, out, log = self.folder / assignment, self.folder / f"{assignment}.json", self.folder / f"{assignment}.log"
        root.mkdir()
        env = {**self.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), self.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        if self.listener is not None and self.view_listener is not None:
            env |= {"FSL_TEST_PORT": str(self.listener.port), "FSL_TEST_VIEW_PORT": str(self.view_listener.port)}
        if self.closed:
            raise RuntimeError("the test session ended before this batch was graded")
        with open(log, "wb") as f:
            self.process = subprocess.Popen([sys.executable, "-m", "grading.background", assignment, str(root), str(out)],
                                            stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            try:
                code = self.process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill()
                raise RuntimeError(f"grading the {assignment} batch took over {TIMEOUT} s; its log: {log}") from None
        if assignment == "protonet" and self.listener is not None:
            self.listener.close()
        text = log.read_text(errors="replace")
        print(f"-- {assignment} batch (background, exit {code}): {text.strip().splitlines()[-1] if text.strip() else ''}")
        if code != 0:
            raise RuntimeError(f"grading the {assignment} batch failed (exit {code}); the end of its log {log}:\n{text[-6000:]}")
        result = json.loads(out.read_text())
        for key in ("root", "released"):
            result[key] = Path(result[key])
        if assignment == "protonet" and self.listener is not None:
            result |= {"received": self.listener.received, "view_listener": self.view_listener}
        return result

    def result(self, name: str) -> dict[str, Any]:
        """Wait for batch ``name`` and return what its fixture returns; raises if it failed."""
        if name not in self.done:
            raise RuntimeError(f"{name} was not started: tests/conftest.py starts the batches its collected tests use")
        if not self.done[name].wait(TIMEOUT * len(self.names)):
            raise RuntimeError(f"gave up waiting for the {BATCHES[name]} batch")
        if name in self.errors:
            raise RuntimeError(self.errors[name])
        return self.results[name]

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def close(self) -> None:
        """Stop a batch still being graded (a test session cut short) and close the listeners."""
        self.closed = True
        self._kill()
        self.thread.join(60)
        for listener in (self.listener, self.view_listener):
            if listener is not None:
                listener.close()


def main(argv: list[str]) -> int:
    assignment, root, out = argv
    result = grade(assignment, Path(root))
    Path(out).write_text(json.dumps(result, default=str))  # (paths as strings: the fixture makes them paths again)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
