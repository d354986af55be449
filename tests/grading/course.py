"""One temporary copy of the course holding every submission of the grading tests, graded
once per test session (the ``graded_course`` fixture in tests/conftest.py).

Typical submissions (``cases.py``: the reference, the untouched release, untrained weights,
wrong implementations) and hostile ones (``adversarial.py``) go into the same batch, so one
``grade`` run — the code behind ``make grade``, sandboxed as on the grading machine —
serves tests/test_grading_pipeline.py and tests/test_grading_adversarial.py. The real
``grading/`` folder and gradebook are never touched.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import torch

from fsl_utils.grading.notebook import fill_solutions, load_reference
from grading import adversarial, cases
from grading import assignment as shared
from grading.assignment import digest

ASSIGNMENT = "protonet"
#: Per-cell time limit while the test batch is graded (the infinite loop and the hang wait for it).
#: The slowest honest cell, a weights test, takes about 4 s on a quiet machine; 60 s leaves room for
#: a machine four times as busy and more.
CELL_TIMEOUT = 60


JOBS = shared.JOBS


def submit(root: Path, student: str, notebook: dict | Path, weights: Path | None) -> Path:
    """Put ``student``'s notebook (a path or JSON) and weights in ``grading/submitted``."""
    return shared.submit(root, ASSIGNMENT, student, notebook, weights)


class Listener:
    """A TCP server on the host that records every connection (the first bytes sent on it; each
    connection is read in its own thread, so an idle one, e.g. a browser's speculative connection,
    holds up no other)."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.5)
        self.port = self.server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(3)
            data = conn.recv(100)
        except OSError:
            data = b""
        self.received.append(data or b"(a connection that sent nothing)")
        conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()


def build_and_grade(root: Path, port: int, view_port: int) -> dict[str, Any]:
    """Copy the course into ``root``, generate the release, submit every case, grade them (in the
    process that runs this: tests/grading/background.py runs it in its own).

    Args:
        port, view_port: the host's :class:`Listener` ports the hostile submissions try to reach
            while graded (``port``) and when their feedback is viewed (``view_port``).

    Returns:
        ``root``, ``released`` (the generated release notebook), ``before`` (digests of folders
        submissions must not change), ``expected`` (student -> autograded score), ``seconds`` and
        ``cpu_seconds`` of grading (this process and its children), ``env`` (the grader's variables).
    """
    released = shared.release_course(root, ASSIGNMENT)

    expected: dict[str, float] = {}
    untrained = root / "untrained.pt"
    torch.manual_seed(0)
    torch.save(load_reference(cases.SOURCE).ProtoNetEncoder().state_dict(), untrained)
    usual = shared.usual_submissions(ASSIGNMENT, released, cases.answers(), untrained, float(cases.AUTOGRADED_POINTS),
                                     cases.expected_score(("test_weights_5w5s", "test_weights_5w1s")))
    for name, (notebook, weights, score) in usual.items():
        submit(root, name, notebook, weights)
        expected[name] = score
    for name, (_, _, failing) in cases.MUTANTS.items():
        submit(root, name, fill_solutions(released, cases.answers(name)), cases.WEIGHTS)
        expected[name] = cases.expected_score(failing)

    env = {"FSL_TEST_PORT": str(port), "FSL_TEST_COURSE": str(root), "FSL_TEST_REPO": str(cases.ROOT), "FSL_TEST_GRADER_PID": str(os.getpid()),
           "FSL_TEST_VIEW_PORT": str(view_port)}
    answers = cases.answers()
    for kind, (score, _) in adversarial.CASES.items():
        adversarial.build(kind, released, answers, cases.WEIGHTS, root / "grading" / "submitted" / kind / ASSIGNMENT, env)
        expected[kind] = score
    before = {"solutions": digest(root / "solutions"), "reference": digest(root / "grading" / "submitted" / "reference"),
              "repo_solutions": digest(cases.ROOT / "solutions" / ASSIGNMENT)}

    # The course keeps its dataset and cache in its own folder (the layout the sandbox used to hide), and
    # the grader's environment holds a secret that must reach no kernel.
    grading_env = {"FSL_DATA_DIR": str(course_data(root)), "FSL_CACHE_DIR": str(root / "cache"), "FSL_TEST_SECRET": adversarial.SECRET_VALUE}
    seconds, cpu_seconds = shared.grade_batch(root, ASSIGNMENT, len(expected), jobs=JOBS, cell_timeout=CELL_TIMEOUT, env=grading_env)
    (root / "timing.json").write_text(json.dumps({"submissions": len(expected), "jobs": JOBS, "seconds": seconds, "cpu_seconds": cpu_seconds,
                                                  "load_average": os.getloadavg()}))
    return {"root": root, "released": released, "before": before, "expected": expected,
            "seconds": seconds, "cpu_seconds": cpu_seconds, "env": grading_env}


def course_data(root: Path) -> Path:
    """``root/data``: the Omniglot folder of ``$FSL_DATA_DIR`` (the real dataset), hard-linked
    where the file system allows it (else copied)."""
    import shutil

    from fsl_utils.data.paths import data_root

    source, target = data_root().resolve() / "omniglot-py", root / "data" / "omniglot-py"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(source, target, copy_function=os.link)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
    return root / "data"
